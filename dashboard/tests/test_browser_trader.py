"""The trader's dashboard in a real browser (Chromium via Playwright, real daphne,
PostgreSQL and Redis): live candles, automated signals with their markers, a row
click moving the chart, outcome and leg badges changing live, labels that never
overlap, scroll-back and the export link."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import make_signal
from dashboard.tests.live_page import assert_once, login, row_ids, wait_state
from dashboard.tests.market_data import candles_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST = "window.SIGNALS_PAGE_OPTIONS = {candleMs: 300, priceMs: 300, statsDebounceMs: 100, ackMs: 200};"


def _chart_ready(page, symbol: str) -> None:
    page.wait_for_function(
        "([s]) => { const c = window.signalsDashboard?.priceChart; return c && c.symbol === s && c.plot; }",
        arg=[symbol], timeout=10_000)


def test_it_updates_the_chart_live_as_candles_change(server, page, staff_user, instruments):
    from pipeline.models import Candle

    candles_seed(symbol="BTCUSDT", count=60, last_close=100.0)
    page.add_init_script(FAST)
    login(page, server)
    _chart_ready(page, "BTCUSDT")
    assert page.evaluate("window.signalsDashboard.priceChart.plot.data[4].at(-1)") == 100.0

    # The forming candle trades higher, then the next minute opens: both show up
    # without a reload.
    newest = Candle.objects.filter(instrument__symbol="BTCUSDT", timeframe="1m").order_by("-open_time").first()
    Candle.objects.filter(pk=newest.pk).update(close=Decimal("101.5"), high=Decimal("101.6"))
    page.wait_for_function("window.signalsDashboard.priceChart.plot.data[4].at(-1) === 101.5", timeout=5_000)
    following = Candle.objects.get(pk=newest.pk)
    following.pk = None
    following.open_time = newest.open_time + dt.timedelta(minutes=1)
    following.close = Decimal("102.25")
    following.save()
    page.wait_for_function("window.signalsDashboard.priceChart.plot.data[4].at(-1) === 102.25", timeout=5_000)
    times = page.evaluate("window.signalsDashboard.priceChart.plot.data[0].slice(-2)")
    assert times[1] - times[0] == 60
    # The latest price follows too, from the prices endpoint (no 404 for symbols without data).
    page.wait_for_function("document.getElementById('price-latest').textContent === '102.25'", timeout=5_000)


def test_it_shows_an_automated_signal_with_its_marker_and_its_strategys_overlays(server, page, staff_user,
                                                                                   instruments):
    from pipeline.strategy_services import strategy_config_create
    from signals.services import signal_create

    candles_seed(symbol="BTCUSDT", count=80, last_close=100.0)
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 5, "slow": 13})
    make_signal(symbol="BTCUSDT")
    page.add_init_script(FAST)
    login(page, server)
    wait_state(page, "live", "ws")
    _chart_ready(page, "BTCUSDT")
    page.wait_for_function("document.getElementById('chart-overlays').textContent.includes('EMA 13')", timeout=5_000)
    assert page.locator("#chart-overlays").inner_text().split() == ["EMA", "5", "EMA", "13"]

    opened = timezone.now().replace(second=0, microsecond=0)
    automated = signal_create(
        symbol="BTCUSDT", direction="short", entry_price="100", stop_loss="101", take_profit="98", confidence=64,
        timeframe="1m", source="ema_crossover", note="EMA 5 crossed below EMA 13.",
        trigger={"config_id": config.id, "timeframe": "1m", "candle_open_time": opened},
    ).signal
    assert_once(page, automated.id, timeout=3_000)
    row = page.locator(f'tr[data-id="{automated.id}"]')
    assert row.locator(".c-source").inner_text() == "ema_crossover"
    # Its entry marker is drawn on the chart, at the newest candle.
    marker = page.wait_for_function(
        f"""() => window.signalsDashboard.priceChart.drawn.markers.find(m => m.id === {automated.id} && m.kind === 'entry')""",
        timeout=5_000).json_value()
    entry_y = page.evaluate("window.signalsDashboard.priceChart.plot.valToPos(100, 'y', true) / devicePixelRatio")
    last_x = page.evaluate("(() => { const p = window.signalsDashboard.priceChart.plot;"
                           " return p.valToPos(p.data[0].at(-1), 'x', true) / devicePixelRatio; })()")
    assert abs(marker["y"] - entry_y) < 1 and abs(marker["x"] - last_x) < 1, (marker, entry_y, last_x)
    # A new source appears in the filter menu.
    assert "ema_crossover" in page.locator("#f-source").inner_text()


def test_it_moves_the_chart_to_a_clicked_row_with_labels_that_never_overlap(server, page, staff_user,
                                                                             instruments):
    candles_seed(symbol="BTCUSDT", count=60, last_close=100.0)
    candles_seed(symbol="ETHUSDT", count=60, last_close=3000.0)
    # Levels a few ticks apart: drawn at their prices the labels would sit on top
    # of each other, and the last target is above every candle (the top edge).
    eth = make_signal(symbol="ETHUSDT", entry_price="3000", stop_loss="2999", take_profit="3200",
                      targets=[{"price": "3000.5", "portion": "0.5"}, {"price": "3001", "portion": "0.3"},
                               {"price": "3200", "portion": "0.2"}])
    btc = make_signal(symbol="BTCUSDT", entry_price="100", stop_loss="99", take_profit="103")
    login(page, server)
    _chart_ready(page, "BTCUSDT")
    assert page.evaluate("window.signalsDashboard.priceChart.drawn.focusId") == btc.id

    page.locator(f'tr[data-id="{eth.id}"]').click()
    _chart_ready(page, "ETHUSDT")
    assert page.locator("#chart-symbol").input_value() == "ETHUSDT"
    assert page.locator(f'tr[data-id="{eth.id}"]').get_attribute("class").count("is-selected") == 1
    page.wait_for_function(f"window.signalsDashboard.priceChart.drawn.focusId === {eth.id}", timeout=5_000)
    labels = page.evaluate("window.signalsDashboard.priceChart.drawn.labels")
    assert [label["kind"] for label in labels] == ["target", "target", "target", "entry", "stop"]
    assert [label["text"] for label in labels][:3] == ["TP1 3,000.5", "TP2 3,001", "TP3 3,200"]
    for label in labels:  # inside the plot: nothing clipped at the top or bottom edge
        assert label["top"] <= label["y"] - label["h"] / 2 and label["y"] + label["h"] / 2 <= label["bottom"], label
    ys = sorted(label["y"] for label in labels)
    assert all(b - a >= labels[0]["h"] for a, b in zip(ys, ys[1:])), ys  # no two overlap
    # The panel beside the chart shows the signal's ladder.
    detail = page.locator("#detail-body")
    assert "TP3" in detail.inner_text() and f"#{eth.id}" in detail.inner_text()
    page.screenshot(path="/tmp/dashboard-row-click.png")


def test_it_changes_outcome_and_leg_badges_live(server, page, staff_user, instruments):
    from signals.services import signal_outcome_progress

    candles_seed(symbol="BTCUSDT", count=60, last_close=100.0)
    signal = make_signal(entry_price="100", stop_loss="99", take_profit="102",
                         targets=[{"price": "101", "portion": "0.5"}, {"price": "102", "portion": "0.5"}],
                         stop_rule={"type": "breakeven", "after_target": 1})
    page.add_init_script(FAST)
    login(page, server)
    wait_state(page, "live", "ws")
    page.locator(f'tr[data-id="{signal.id}"]').click()
    page.wait_for_function("document.querySelectorAll('#detail-body .leg-open').length === 2", timeout=5_000)

    now = timezone.now()
    legs = [
        {"target": "101", "portion": "0.5", "status": "tp_hit", "closed_at": now.isoformat().replace("+00:00", "Z"),
         "exit_price": "101", "r": "1"},
        {"target": "102", "portion": "0.5", "status": "open", "closed_at": None, "exit_price": None, "r": None},
    ]
    signal_outcome_progress(signal_id=signal.id, legs=legs, stop_price="100", evaluated_until=now, state={},
                            mfe_r="1", mae_r="0")
    row = page.locator(f'tr[data-id="{signal.id}"]')
    page.wait_for_function(f"""document.querySelector('tr[data-id="{signal.id}"] .ladder')?.textContent === '1/2'""",
                           timeout=3_000)
    assert row.locator(".outcome").inner_text() == "Open"
    page.wait_for_function("document.querySelectorAll('#detail-body .leg-tp_hit').length === 1", timeout=3_000)
    # The breakeven rule moved the stop: the chart's stop line follows.
    page.wait_for_function("""window.signalsDashboard.priceChart.drawn.labels.some(l => l.kind === 'stop' && l.text === 'SL 100')""",
                           timeout=5_000)

    legs[1].update(status="tp_hit", closed_at=timezone.now().isoformat().replace("+00:00", "Z"), exit_price="102", r="2")
    signal_outcome_progress(signal_id=signal.id, legs=legs, stop_price="100", evaluated_until=timezone.now(), state={},
                            mfe_r="2", mae_r="0", status="tp_hit", closed_at=timezone.now(), exit_price="102",
                            r_multiple="1.5")
    page.wait_for_function(
        f"""document.querySelector('tr[data-id="{signal.id}"] .outcome').textContent === 'TP hit +1.5R'""", timeout=3_000)
    assert row.locator(".outcome").get_attribute("class").split()[-2:] == ["outcome-tp_hit", "is-updated"]
    assert row.locator(".c-now").inner_text() == "—"  # closed: no unrealized R any more
    # The exit is marked on the chart.
    page.wait_for_function(f"""window.signalsDashboard.priceChart.drawn.markers.some(m => m.id === {signal.id} && m.kind === 'exit' && m.status === 'tp_hit')""",
                           timeout=5_000)


def test_it_scrolls_back_through_history_and_exports_what_is_filtered(server, page, staff_user, instruments):
    ids = [make_signal(direction="short", entry_price="100", stop_loss="110", take_profit="80").id
           for _ in range(104)]
    make_signal(direction="long")
    login(page, server, "/?direction=short")
    assert len(row_ids(page)) == 100
    page.locator("#history-more").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('#signals-body tr').length === 104", timeout=5_000)
    assert row_ids(page) == sorted(ids, reverse=True)
    page.wait_for_selector("#history-more", state="hidden")
    assert page.locator("#export-link").get_attribute("href") == "/dashboard/export.csv?direction=short"

    page.get_by_label("Min confidence").fill("75")
    page.wait_for_function("document.querySelectorAll('#signals-body tr').length === 0", timeout=5_000)
    assert page.locator("#export-link").get_attribute("href") == "/dashboard/export.csv?direction=short&min_confidence=75"
    with page.expect_download() as download:
        page.locator("#export-link").click()
    assert download.value.suggested_filename.endswith(".csv")
    assert open(download.value.path()).read().strip().count("\n") == 0  # the header only


def test_it_brings_back_rows_that_live_arrivals_pushed_off_the_bottom(server, page, staff_user, staff_token,
                                                                      instruments):
    from dashboard.tests.live_page import post_signal

    first = [make_signal().id for _ in range(3)]
    page.add_init_script("window.SIGNALS_PAGE_OPTIONS = {maxRows: 3};")
    login(page, server)
    wait_state(page, "live", "ws")
    assert page.locator("#history-more").is_hidden()  # the page holds everything
    live = [post_signal(server, staff_token) for _ in range(2)]
    page.wait_for_function(f"""document.querySelector('#signals-body tr').dataset.id === '{live[-1]}'""", timeout=3_000)
    # The trimmed rows are history now: the "load older" row shows, and paging back
    # (automatic once the row is in view) brings them, in order, once. Under the
    # chart's RSI/MACD panes the row is below the fold at this window size: the
    # reader scrolls down to it (no button press).
    page.wait_for_selector("#history-more", state="visible", timeout=3_000)
    page.locator("#history-more").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('#signals-body tr').length === 5", timeout=15_000)
    assert row_ids(page) == [live[1], live[0], first[2], first[1], first[0]]
    page.wait_for_selector("#history-more", state="hidden")
