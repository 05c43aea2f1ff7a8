"""A signal's life on the dashboard in a real browser (Chromium via Playwright, real
daphne): its publisher amends it from the panel, every dashboard sees the stop
line move and the history grow live, refusals are shown as the server words them,
and the performance table follows outcomes as they arrive."""
from __future__ import annotations

import pytest

from conftest import make_signal
from dashboard.tests.live_page import login, stop_daphne, wait_state
from dashboard.tests.market_data import candles_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST = "window.SIGNALS_PAGE_OPTIONS = {candleMs: 300, priceMs: 300, statsDebounceMs: 100, ackMs: 200};"


def _labels(page) -> dict[str, str]:
    return {label["kind"]: label["text"] for label in page.evaluate("window.signalsDashboard.priceChart.drawn.labels")}


def test_it_lets_the_publisher_amend_and_shows_amendments_live(server, page, browser, staff_user, reader_user,
                                                               instruments):
    from signals.services import signal_event_create

    candles_seed(symbol="BTCUSDT", count=60, last_close=100.0)
    signal = make_signal(entry_price="100", stop_loss="90", take_profit="120")
    page.add_init_script(FAST)
    login(page, server)
    wait_state(page, "live", "ws")
    page.locator(f'tr[data-id="{signal.id}"]').click()
    page.wait_for_function(f"window.signalsDashboard.priceChart.drawn.focusId === {signal.id}")
    assert _labels(page)["stop"] == "SL 90"

    # A reader watches the same signal in another browser.
    reader_context = browser.new_context(viewport={"width": 1400, "height": 1000})
    reader = reader_context.new_page()
    try:
        reader.goto(f"{server.http_url}/accounts/login/?next=/")
        reader.get_by_label("Username").fill("reader")
        reader.get_by_label("Password").fill("reader-pass-123")
        reader.get_by_role("button", name="Log in").click()
        reader.wait_for_url(f"{server.http_url}/")
        wait_state(reader, "live", "ws")
        reader.locator(f'tr[data-id="{signal.id}"]').click()
        reader.wait_for_function(f"window.signalsDashboard.priceChart.drawn.focusId === {signal.id}")
        assert reader.locator("#detail-body .amend").count() == 0  # readers cannot amend

        # A bad price is refused with the server's field error, nothing recorded.
        page.get_by_label("New stop price").fill("ninety")
        page.get_by_role("button", name="Move stop").click()
        page.wait_for_selector("#detail-body .amend-msg.err")
        assert "price" in page.locator("#detail-body .amend-msg").inner_text().lower()

        page.get_by_label("New stop price").fill("95")
        page.get_by_role("button", name="Move stop").click()
        page.wait_for_selector("#detail-body .amend-msg.ok")
        for viewer in (page, reader):
            viewer.wait_for_function(
                "window.signalsDashboard.priceChart.drawn.labels.some(l => l.kind === 'stop' && l.text === 'SL 95')",
                timeout=5_000)
            assert _labels(viewer)["original-stop"] == "SL was 90"
            viewer.wait_for_function("document.querySelector('#detail-body .ev-move_stop')?.textContent.includes('95')")
            assert "by staff" in viewer.locator("#detail-body .ev-move_stop").inner_text()
            assert viewer.locator(f'tr[data-id="{signal.id}"] .c-stop .moved').inner_text() == "95"

        # A close published elsewhere (the API, the admin) reaches both live; a cancel
        # after it is refused, in the server's words.
        signal_event_create(signal_id=signal.id, event_type="close", reason="news ahead", created_by=staff_user)
        for viewer in (page, reader):
            viewer.wait_for_function("document.querySelector('#detail-body .ev-close')?.textContent.includes('news ahead')",
                                     timeout=5_000)
        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name="Confirm cancel").click()
        page.wait_for_selector("#detail-body .amend-msg.err")
        assert "being closed" in page.locator("#detail-body .amend-msg").inner_text()
    finally:
        reader_context.close()


def test_it_cancels_from_the_panel_and_the_badge_follows(server, page, staff_user, instruments):
    candles_seed(symbol="BTCUSDT", count=60, last_close=100.0)
    signal = make_signal(entry_price="100", stop_loss="90", take_profit="120")
    login(page, server)
    wait_state(page, "live", "ws")
    page.locator(f'tr[data-id="{signal.id}"]').click()
    page.get_by_label("Reason").fill("setup invalidated")
    events: list[str] = []
    page.on("request", lambda r: events.append(r.method) if r.url.endswith("/events/") else None)
    page.get_by_role("button", name="Cancel").click()
    # One click only asks: a cancel reaches every subscriber and cannot be undone.
    page.wait_for_timeout(300)
    assert events == [] and page.locator(f'tr[data-id="{signal.id}"] .outcome').inner_text() == "Open"
    page.get_by_role("button", name="Confirm cancel").click()
    page.wait_for_function(
        f"""document.querySelector('tr[data-id="{signal.id}"] .outcome').textContent === 'Cancelled'""", timeout=5_000)
    # Once decided, the panel offers no amendment.
    page.wait_for_function("document.querySelector('#detail-body .amend') === null", timeout=3_000)
    assert "setup invalidated" in page.locator("#detail-body .ev-cancel").inner_text()


def test_it_updates_the_performance_table_live_as_outcomes_arrive(server, page, staff_user, instruments):
    from signals.services import signal_outcome_close

    won = make_signal(source="ema_crossover")
    lost = make_signal(source="ema_crossover")
    make_signal(source="manual")
    page.add_init_script(FAST)
    login(page, server)
    wait_state(page, "live", "ws")
    row = page.locator('#perf-body tr[data-source="ema_crossover"]')
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == "2" and row.locator("td").nth(2).inner_text() == "0"

    signal_outcome_close(signal_id=won.id, status="tp_hit", exit_price=120)
    page.wait_for_function("""document.querySelector('#perf-body tr[data-source="ema_crossover"] td:nth-child(3)').textContent === '1'""",
                           timeout=5_000)
    assert row.locator(".wr-num").inner_text() == "100%"
    assert row.locator("td").nth(4).inner_text() == "+2R"

    signal_outcome_close(signal_id=lost.id, status="sl_hit", exit_price=90)
    page.wait_for_function("""document.querySelector('#perf-body tr[data-source="ema_crossover"] .wr-num').textContent === '50%'""",
                           timeout=5_000)
    assert row.locator("td").nth(4).inner_text() == "+0.5R"
    tiles = page.locator("#stat-tiles").inner_text()
    assert "50%" in tiles and "+0.5R" in tiles


def test_it_replays_amendments_made_while_it_was_disconnected(restartable_server, page, staff_user, instruments):
    from signals.services import signal_event_create

    server = restartable_server
    candles_seed(symbol="BTCUSDT", count=30, last_close=100.0)
    signal = make_signal(entry_price="100", stop_loss="90", take_profit="120")
    signal_event_create(signal_id=signal.id, event_type="move_stop", price="92", created_by=staff_user)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    login(page, server)
    wait_state(page, "live", "ws")
    page.locator(f'tr[data-id="{signal.id}"]').click()
    page.wait_for_function("document.querySelectorAll('#detail-body .ev-move_stop').length === 1")

    mark = page.evaluate("window.signalsDashboard.statusHistory.length")
    stop_daphne(server)
    wait_state(page, "reconnecting", since=mark, timeout=5_000)
    # Amended while this page cannot hear it: the resumed stream replays it, once.
    missed = signal_event_create(signal_id=signal.id, event_type="move_stop", price="95", created_by=staff_user)
    server.start()
    wait_state(page, "live", "ws", since=mark, timeout=20_000)
    page.wait_for_function("document.querySelectorAll('#detail-body .ev-move_stop').length === 2", timeout=5_000)
    page.wait_for_function(
        "window.signalsDashboard.priceChart.drawn.labels.some(l => l.kind === 'stop' && l.text === 'SL 95')")
    # The resumed socket asked for amendments after the newest one the page held.
    resumed = [url for url in sockets if f"after_event_id={missed.id - 1}" in url]
    assert resumed, sockets
    page.wait_for_timeout(500)
    assert page.locator("#detail-body .ev-move_stop").count() == 2
