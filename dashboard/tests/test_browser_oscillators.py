"""The RSI and MACD panes under the price chart in a real browser (Chromium via
Playwright, real daphne, PostgreSQL and Redis): drawn from the candles on screen
with pipeline.indicators' numbers, on the price chart's time axis and cursor,
live as the candles change, the legend reading the value under the cursor, a
toggle per pane remembered across a reload, and "not enough candles" rather than a
line out of nothing."""
from __future__ import annotations

import math
from decimal import Decimal

import pytest

from dashboard.tests.live_page import login
from dashboard.tests.market_data import candles_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST = "window.SIGNALS_PAGE_OPTIONS = {candleMs: 300, priceMs: 300, statsDebounceMs: 100, ackMs: 200};"
PANES = "window.signalsDashboard.panes.panes"


def _panes_drawn(page, symbol: str, *names: str) -> None:
    page.wait_for_function(
        """([s, names]) => { const d = window.signalsDashboard;
             return d && d.priceChart.symbol === s && d.priceChart.plot && names.every((n) => d.panes.panes[n].plot); }""",
        arg=[symbol, list(names)], timeout=10_000)


def _expected(closes: list[float]) -> dict[str, list]:
    from pipeline.indicators import MACD, RSI

    rsi, macd = RSI(14), MACD(12, 26, 9)
    rsi_values = [rsi.update(x) for x in closes]
    macd_values = [macd.update(x) for x in closes]
    return {
        "rsi": [rsi_values],
        "macd": [[None if v is None else v[part] for v in macd_values] for part in range(3)],
    }


def _assert_pane_equals_server(page, closes: list[float]) -> None:
    expected = _expected(closes)
    for name, columns in expected.items():
        drawn = page.evaluate(f"{PANES}.{name}.plot.data.slice(1)")
        for got, want in zip(drawn, columns, strict=True):
            assert len(got) == len(want) == len(closes)
            for i, (g, w) in enumerate(zip(got, want)):
                assert (g is None) == (w is None), (name, i, g, w)
                if w is not None:
                    assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (name, i, g, w)


def _reading(value: float) -> str:
    """The legend's rule (oscillator_panes.formatOscillator), written again here."""
    decimals = min(10, max(2, 3 - math.floor(math.log10(abs(value))))) if value else 2
    return f"{value:,.{decimals}f}"


def _legend_values(page, name: str) -> list[str]:
    # The first legend row is the time, hidden (the price chart's legend shows it).
    return page.locator(f'.osc-pane[data-pane="{name}"] .u-legend .u-series:not(:first-child) .u-value').all_inner_texts()


def _over_box(page, selector: str) -> dict:
    return page.locator(f"{selector} .u-over").bounding_box()


def test_it_draws_rsi_and_macd_under_the_price_chart_on_its_time_axis_and_cursor(server, page, staff_user,
                                                                                   instruments):
    from pipeline.models import Candle

    candles_seed(symbol="BTCUSDT", count=150, last_close=64000.0)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.add_init_script(FAST)
    login(page, server)
    _panes_drawn(page, "BTCUSDT", "rsi", "macd")
    page.screenshot(path="/tmp/dash_panes.png")
    closes = page.evaluate("window.signalsDashboard.priceChart.plot.data[4]")
    assert len(closes) == 150
    # The numbers the strategies compute, on the candles the price chart shows.
    _assert_pane_equals_server(page, closes)
    assert page.evaluate(f"{PANES}.rsi.plot.data[0] === window.signalsDashboard.priceChart.plot.data[0]")

    # One time axis: the three plot areas start and end at the same pixels.
    price = _over_box(page, "#price-chart")
    for name in ("rsi", "macd"):
        pane = _over_box(page, f'.osc-pane[data-pane="{name}"]')
        assert abs(pane["x"] - price["x"]) < 1 and abs(pane["width"] - price["width"]) < 1, (name, pane, price)
        assert pane["y"] > price["y"] + price["height"]  # under the price chart, not over it
    rsi_box = _over_box(page, '.osc-pane[data-pane="rsi"]')
    macd_box = _over_box(page, '.osc-pane[data-pane="macd"]')
    assert rsi_box["y"] + rsi_box["height"] < macd_box["y"]

    # Away from the plots the legend reads the newest values.
    expected = _expected(closes)
    assert _legend_values(page, "rsi") == [_reading(expected["rsi"][0][-1])]
    assert _legend_values(page, "macd") == [_reading(column[-1]) for column in expected["macd"]]
    assert page.get_by_role("group", name="RSI (14) of BTCUSDT 1m").is_visible()
    assert page.get_by_role("group", name="MACD (12, 26, 9) of BTCUSDT 1m").is_visible()

    # The cursor over the RSI pane is the cursor of all three, on one candle, and
    # each legend reads that candle's value.
    page.mouse.move(rsi_box["x"] + rsi_box["width"] * 0.6, rsi_box["y"] + rsi_box["height"] / 2)
    page.wait_for_function(f"{PANES}.rsi.plot.cursor.idx !== null && {PANES}.macd.plot.cursor.idx !== null")
    idx = page.evaluate(f"{PANES}.rsi.plot.cursor.idx")
    assert 60 < idx < 120
    assert page.evaluate(f"[window.signalsDashboard.priceChart.plot.cursor.idx, {PANES}.macd.plot.cursor.idx]") == [idx, idx]
    assert _legend_values(page, "rsi") == [_reading(expected["rsi"][0][idx])]
    assert _legend_values(page, "macd") == [_reading(column[idx]) for column in expected["macd"]]
    # The same candle's time in every plot is at the same page x.
    xs = page.evaluate(f"""(() => {{ const t = window.signalsDashboard.priceChart.plot.data[0][{idx}];
        return [window.signalsDashboard.priceChart.plot, {PANES}.rsi.plot, {PANES}.macd.plot]
            .map((p) => p.over.getBoundingClientRect().left + p.valToPos(t, 'x')); }})()""")
    assert max(xs) - min(xs) < 1, xs
    page.screenshot(path="/tmp/dash_panes_hover.png")

    # A zoom on the price chart (drag) narrows the panes to the same candles.
    page.mouse.move(price["x"] + price["width"] * 0.3, price["y"] + 40)
    page.mouse.down()
    page.mouse.move(price["x"] + price["width"] * 0.6, price["y"] + 40, steps=5)
    page.mouse.up()
    ranges = page.evaluate(f"""[window.signalsDashboard.priceChart.plot, {PANES}.rsi.plot, {PANES}.macd.plot]
        .map((p) => [p.scales.x.min, p.scales.x.max])""")
    full = page.evaluate("[window.signalsDashboard.priceChart.plot.data[0][0], window.signalsDashboard.priceChart.plot.data[0].at(-1)]")
    assert ranges[0][0] > full[0] and ranges[0][1] < full[1], (ranges, full)
    assert ranges[1] == ranges[0] and ranges[2] == ranges[0]
    page.mouse.move(10, 10)

    # Live: the forming candle trades far higher; both panes follow without a reload
    # (and without requests of their own: the price chart's candles are reused).
    newest = Candle.objects.filter(instrument__symbol="BTCUSDT", timeframe="1m").order_by("-open_time").first()
    Candle.objects.filter(pk=newest.pk).update(close=Decimal("66000"), high=Decimal("66010"))
    page.wait_for_function("window.signalsDashboard.priceChart.plot.data[4].at(-1) === 66000", timeout=5_000)
    page.wait_for_function(f"{PANES}.rsi.plot.data[0].length === 150 && {PANES}.rsi.plot.data[1].at(-1) > 70",
                           timeout=5_000)
    closes = page.evaluate("window.signalsDashboard.priceChart.plot.data[4]")
    _assert_pane_equals_server(page, closes)
    assert _legend_values(page, "rsi") == [_reading(_expected(closes)["rsi"][0][-1])]
    page.screenshot(path="/tmp/dash_panes_live.png")


def test_it_hides_and_shows_each_pane_and_remembers_it_across_a_reload(server, page, staff_user, instruments):
    candles_seed(symbol="BTCUSDT", count=80, last_close=100.0)
    login(page, server)
    _panes_drawn(page, "BTCUSDT", "rsi", "macd")
    rsi_toggle = page.get_by_role("checkbox", name="RSI", exact=True)
    macd_toggle = page.get_by_role("checkbox", name="MACD", exact=True)
    assert rsi_toggle.is_checked() and macd_toggle.is_checked()  # both on by default
    assert page.get_by_role("group", name="Indicator panes under the chart").is_visible()

    rsi_toggle.uncheck()
    page.wait_for_selector('.osc-pane[data-pane="rsi"]', state="hidden")
    assert page.evaluate(f"{PANES}.rsi.plot") is None  # not drawn while hidden
    assert page.locator('.osc-pane[data-pane="macd"]').is_visible()
    assert page.evaluate("localStorage.getItem('signals.pane.rsi')") == "off"

    page.reload()
    _panes_drawn(page, "BTCUSDT", "macd")
    assert not rsi_toggle.is_checked() and macd_toggle.is_checked()
    assert page.locator('.osc-pane[data-pane="rsi"]').is_hidden()
    assert page.evaluate(f"{PANES}.rsi.plot") is None

    # Back on: drawn at once from the candles the chart already has, full width.
    rsi_toggle.check()
    _panes_drawn(page, "BTCUSDT", "rsi", "macd")
    price = _over_box(page, "#price-chart")
    rsi_box = _over_box(page, '.osc-pane[data-pane="rsi"]')
    assert abs(rsi_box["width"] - price["width"]) < 1
    _assert_pane_equals_server(page, page.evaluate("window.signalsDashboard.priceChart.plot.data[4]"))
    macd_toggle.uncheck()
    page.reload()
    _panes_drawn(page, "BTCUSDT", "rsi")
    assert rsi_toggle.is_checked() and not macd_toggle.is_checked()
    assert page.locator('.osc-pane[data-pane="macd"]').is_hidden()


def test_it_says_not_enough_candles_instead_of_drawing_from_too_few(server, page, staff_user, instruments):
    import datetime as dt

    from pipeline.models import Candle

    candles_seed(symbol="BTCUSDT", count=33, last_close=100.0)
    page.add_init_script(FAST)
    login(page, server)
    _panes_drawn(page, "BTCUSDT", "rsi")
    # 33 candles: RSI(14) has values from the 15th; MACD(12, 26, 9) needs 34.
    rsi = page.evaluate(f"{PANES}.rsi.plot.data[1]")
    assert rsi[:14] == [None] * 14 and all(v is not None for v in rsi[14:])
    macd_pane = page.locator('.osc-pane[data-pane="macd"]')
    assert page.evaluate(f"{PANES}.macd.plot") is None
    assert macd_pane.locator(".osc-placeholder").inner_text() == (
        "Not enough candles for MACD (12, 26, 9): the chart has 33, it needs 34.")
    assert macd_pane.locator("canvas").count() == 0
    page.locator("article:has(#price-chart)").screenshot(path="/tmp/dash_panes_not_enough.png")

    # The next minute's candle arrives live: now there are enough, and MACD's one
    # value is pipeline.indicators' one.
    newest = Candle.objects.filter(instrument__symbol="BTCUSDT", timeframe="1m").order_by("-open_time").first()
    following = Candle.objects.get(pk=newest.pk)
    following.pk = None
    following.open_time = newest.open_time + dt.timedelta(minutes=1)
    following.close = Decimal("100.5")
    following.save()
    page.wait_for_function(f"{PANES}.macd.plot !== null", timeout=5_000)
    assert macd_pane.locator(".osc-placeholder").is_hidden()
    closes = page.evaluate("window.signalsDashboard.priceChart.plot.data[4]")
    assert len(closes) == 34
    _assert_pane_equals_server(page, closes)
    assert page.evaluate(f"{PANES}.macd.plot.data[1].filter((v) => v !== null).length") == 1

    # A symbol with no candles at all: both panes say so, and draw nothing.
    page.locator("#chart-symbol").select_option("ETHUSDT")
    page.wait_for_function("window.signalsDashboard.priceChart.placeholder.dataset.kind === 'empty'", timeout=5_000)
    for name, title in (("rsi", "RSI (14)"), ("macd", "MACD (12, 26, 9)")):
        pane = page.locator(f'.osc-pane[data-pane="{name}"]')
        assert pane.locator(".osc-placeholder").inner_text() == f"{title}: No candles on the chart."
        assert page.evaluate(f"{PANES}.{name}.plot") is None


def _same_width(page) -> None:
    page.wait_for_function(f"""(() => {{ const w = (p) => p.over.getBoundingClientRect().width;
        const price = w(window.signalsDashboard.priceChart.plot);
        return [{PANES}.rsi.plot, {PANES}.macd.plot].every((p) => Math.abs(w(p) - price) < 1); }})()""",
        timeout=5_000)


def _apart(ra: dict, rb: dict) -> bool:
    return (ra["x"] + ra["width"] <= rb["x"] or rb["x"] + rb["width"] <= ra["x"]
            or ra["y"] + ra["height"] <= rb["y"] or rb["y"] + rb["height"] <= ra["y"])


@pytest.mark.parametrize("width", [800, 420])
def test_it_fits_a_narrow_window(server, page, staff_user, instruments, width):
    candles_seed(symbol="BTCUSDT", count=150, last_close=1.08215)  # a forex-sized price: MACD near 1e-4
    page.set_viewport_size({"width": width, "height": 900})
    login(page, server)
    _panes_drawn(page, "BTCUSDT", "rsi", "macd")
    _same_width(page)
    # The toggles sit in the chart's header beside its controls, overlapping nothing.
    boxes = {name: page.locator(selector).bounding_box() for name, selector in (
        ("controls", "#chart-timeframe >> xpath=.."), ("toggles", ".pane-toggles"),
        ("meta", ".price-meta"), ("card", "article:has(#price-chart)"))}
    assert _apart(boxes["controls"], boxes["toggles"]) and _apart(boxes["toggles"], boxes["meta"]), boxes
    card = boxes["card"]
    assert boxes["toggles"]["x"] + boxes["toggles"]["width"] <= card["x"] + card["width"]
    # Every legend whole, inside its own pane (in a phone-wide window the MACD
    # legend takes two lines and its pane grows), and the panes in order.
    pane_boxes = []
    for name in ("rsi", "macd"):
        pane = page.locator(f'.osc-pane[data-pane="{name}"]')
        legend = pane.locator(".u-legend").bounding_box()
        box = pane.bounding_box()
        assert legend["y"] + legend["height"] <= box["y"] + box["height"] + 0.5, (name, legend, box)
        assert legend["x"] >= box["x"] and legend["x"] + legend["width"] <= box["x"] + box["width"] + 0.5
        pane_boxes.append(box)
    assert pane_boxes[0]["y"] + pane_boxes[0]["height"] <= pane_boxes[1]["y"] + 0.5
    assert pane_boxes[1]["y"] + pane_boxes[1]["height"] <= card["y"] + card["height"]
    # Small MACD values still read as numbers, not as 0 or an exponent.
    for value in _legend_values(page, "macd"):
        assert "e" not in value and value not in ("0.00", "-0.00", "—"), value
    labels = page.evaluate(f"{PANES}.macd.plot.axes[1]._values")
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels  # distinct ticks, not all "0"
    page.locator("article:has(#price-chart)").scroll_into_view_if_needed()
    page.screenshot(path=f"/tmp/dash_panes_{width}.png")

    # Widening the window resizes the panes with the price chart.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_function("window.signalsDashboard.priceChart.plot.over.getBoundingClientRect().width > 700")
    _same_width(page)
