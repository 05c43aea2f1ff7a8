"""The dashboard's other features in a real browser (Chromium via Playwright,
real daphne): filters without a reload, charts and their placeholders, backoff
bounds, opt-in notifications."""
from __future__ import annotations

import json

import pytest

from conftest import make_signal
from dashboard.tests.live_page import assert_once, history_mark, login, post_signal, row_ids, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_changes_filters_without_a_reload_and_streams_with_them(server, page, staff_token,
                                                                   instruments):
    crypto = make_signal(symbol="BTCUSDT").id
    forex = make_signal(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200").id
    login(page, server)
    wait_state(page, "live", "ws")
    assert row_ids(page) == [forex, crypto]

    mark = history_mark(page)
    page.get_by_label("Market").select_option("forex")
    page.wait_for_function("new URL(location.href).searchParams.get('market') === 'forex'")
    page.wait_for_function("document.querySelectorAll('#signals-body tr').length === 1")
    wait_state(page, "live", "ws", since=mark)
    assert row_ids(page) == [forex]

    # A crypto signal is filtered out by the server; a forex one arrives.
    post_signal(server, staff_token, symbol="ETHUSDT")
    new_forex = post_signal(server, staff_token, symbol="USDCOP", entry_price="4000",
                             stop_loss="3900", take_profit="4200")
    assert_once(page, new_forex, timeout=2_000)
    assert row_ids(page) == [new_forex, forex]

    # Nothing matches: the empty state shows.
    page.get_by_label("Market").select_option("")
    page.get_by_label("Source").select_option("manual")
    page.get_by_label("Symbol", exact=True).select_option("SOLUSDT")
    page.wait_for_selector("#empty-state:not([hidden])")
    assert "for these filters" in page.locator("#empty-state").inner_text()


def test_it_shows_a_placeholder_or_a_chart_for_prices(server, page, staff_user, instruments):
    make_signal(symbol="BTCUSDT")
    candles = [
        {"open_time": f"2030-01-01T00:{m:02d}:00Z", "open": str(100 + m), "high": str(102 + m),
         "low": str(99 + m), "close": str(101 + m), "volume": "5", "closed": True}
        for m in range(30)
    ]
    state = {"candles": 503}

    def _candles(route):
        if state["candles"] == 503:
            route.fulfill(status=503, content_type="application/json", body='{"detail": "down"}')
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(candles))

    # The browser-side rendering is what is under test here, so the candles endpoint
    # answers from the test; everything else is the real server.
    page.route("**/api/market/candles/**", _candles)
    login(page, server)
    page.wait_for_selector('#price-placeholder[data-kind="unavailable"]:not([hidden])')
    assert "not available" in page.locator("#price-placeholder").inner_text()

    state["candles"] = 200
    page.locator("#chart-timeframe").select_option("5m")
    page.wait_for_selector("#price-chart canvas")
    page.wait_for_selector("#price-placeholder[hidden]", state="attached")
    assert page.locator("#activity-chart canvas").count() == 1
    assert "manual" in page.locator("#source-breakdown").inner_text()


def test_it_keeps_reconnect_delays_within_the_full_jitter_window(server, page):
    page.goto(f"{server.http_url}/static/dashboard/js/backoff.js")  # same origin for the import
    delays = page.evaluate("""async () => {
        const { backoffDelay, backoffCeiling } = await import('/static/dashboard/js/backoff.js');
        const out = [];
        for (let attempt = 0; attempt < 8; attempt++) {
            out.push([backoffCeiling(attempt), backoffDelay(attempt, { random: () => 0 }),
                      backoffDelay(attempt, { random: () => 0.999999 })]);
        }
        return out;
    }""")
    ceilings = [c for c, _, _ in delays]
    assert ceilings == [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    assert all(low == 0 and ceiling - 1 <= high < ceiling for ceiling, low, high in delays)


def test_it_names_the_connection_state_by_the_badge_rules(server, page):
    page.goto(f"{server.http_url}/static/dashboard/js/status.js")
    states = page.evaluate("""async () => {
        const { feedStatus } = await import('/static/dashboard/js/status.js');
        return {
            first: feedStatus({}),
            live: feedStatus({ wsOpen: true, sseOpen: true, polling: true, pollOk: true }),
            sse: feedStatus({ sseOpen: true, retryInMs: 4000, failures: 3 }),
            polling: feedStatus({ polling: true, pollOk: true, retryInMs: 9000, failures: 4 }),
            waiting: feedStatus({ everConnected: true, retryInMs: 2100, failures: 1 }),
            attempting: feedStatus({ everConnected: true, retryInMs: null, failures: 2 }),
            longOutage: feedStatus({ everConnected: true, retryInMs: 20000, failures: 6 }),
            noNetwork: feedStatus({ everConnected: true, online: false, retryInMs: 1000 }),
            signedOut: feedStatus({ fatal: 'signed out: log in again', wsOpen: true }),
        };
    }""")
    assert states["first"] == {"state": "connecting", "transport": ""}
    assert states["live"] == {"state": "live", "transport": "ws"}
    assert states["sse"] == {"state": "live", "transport": "sse"}
    assert states["polling"] == {"state": "polling", "transport": "poll"}
    assert states["waiting"] == {"state": "reconnecting", "transport": "", "seconds": 3}
    assert states["attempting"] == {"state": "reconnecting", "transport": "", "seconds": 0}
    assert states["longOutage"]["state"] == "offline" and states["longOutage"]["detail"] == "retrying in 20s"
    assert states["noNetwork"]["state"] == "offline"
    assert states["signedOut"] == {"state": "offline", "transport": "", "detail": "signed out: log in again"}


def test_it_notifies_about_new_signals_only_when_opted_in_and_hidden(server, page, staff_token,
                                                                     instruments):
    page.add_init_script("""
        window.__notes = [];
        window.__hidden = false;
        Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
        window.Notification = class {
            constructor(title, options) { window.__notes.push({ title, body: options && options.body }); }
            static permission = 'default';
            static requestPermission() { window.Notification.permission = 'granted'; return Promise.resolve('granted'); }
        };
    """)
    login(page, server)
    wait_state(page, "live", "ws")
    toggle = page.locator("#notify-toggle")
    assert toggle.get_attribute("aria-pressed") == "false"

    visible_id = post_signal(server, staff_token)
    assert_once(page, visible_id, timeout=2_000)
    toggle.click()
    page.wait_for_function("document.querySelector('#notify-toggle').getAttribute('aria-pressed') === 'true'")

    page.evaluate("window.__hidden = true")
    hidden_id = post_signal(server, staff_token, symbol="ETHUSDT")
    assert_once(page, hidden_id, timeout=2_000)
    page.wait_for_function("window.__notes.length === 1")
    note = page.evaluate("window.__notes[0]")
    assert "ETHUSDT" in note["title"]
    assert page.title().startswith("(1) ")


def test_it_narrows_the_feed_and_notifications_to_the_users_subscriptions(server, page, staff_user, staff_token,
                                                                          instruments):
    from integrations.services import browser_preference_set

    crypto = make_signal(symbol="BTCUSDT").id
    forex = make_signal(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200").id
    browser_preference_set(user=staff_user, markets=["forex"], min_confidence=50)
    page.add_init_script("""
        window.__notes = [];
        window.__hidden = false;
        Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
        window.Notification = class {
            constructor(title) { window.__notes.push(title); }
            static permission = 'granted';
            static requestPermission() { return Promise.resolve('granted'); }
        };
        localStorage.setItem('signals.notifications', 'on');
    """)
    login(page, server)
    wait_state(page, "live", "ws")
    switch = page.get_by_label("Mine only")
    switch.wait_for()
    assert row_ids(page) == [forex, crypto]
    switch.check()
    page.wait_for_function(f"""document.querySelector('tr[data-id="{crypto}"]').hidden""")
    assert page.locator("#row-count").inner_text() == "1"

    # Live arrivals follow the same preferences, in the table and in notifications.
    page.evaluate("window.__hidden = true")
    ignored = post_signal(server, staff_token, symbol="ETHUSDT")
    wanted = post_signal(server, staff_token, symbol="USDCOP", entry_price="4000", stop_loss="3900",
                         take_profit="4200")
    page.wait_for_selector(f'#signals-body tr[data-id="{wanted}"]', timeout=3_000)
    page.wait_for_function("window.__notes.length === 1", timeout=3_000)
    assert "USDCOP" in page.evaluate("window.__notes[0]")
    assert page.locator(f'tr[data-id="{ignored}"]').is_hidden()
    # The switch is remembered; off, everything shows again.
    page.reload()
    wait_state(page, "live", "ws")
    page.wait_for_function(f"""document.querySelector('tr[data-id="{crypto}"]').hidden""")
    page.get_by_label("Mine only").uncheck()
    page.wait_for_function("document.querySelectorAll('#signals-body tr[hidden]').length === 0")
    assert page.locator("#row-count").inner_text() == "4"


def test_it_opens_the_chart_where_there_is_data_without_a_single_error(server, page, staff_user, instruments):
    from dashboard.tests.market_data import candles_seed
    from pipeline.latest_prices import latest_price_forget

    latest_price_forget(symbol="USDCOP")  # no cached price from another test of the run
    candles_seed(symbol="ETHUSDT", count=30, last_close=3000.0)
    make_signal(symbol="ETHUSDT", entry_price="3000", stop_loss="2900", take_profit="3300")
    # The newest signal is on a pair with no prices at all (a forex pair on a Saturday).
    make_signal(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200")
    failed: list[str] = []
    console_errors: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    login(page, server)
    wait_state(page, "live", "ws")
    page.wait_for_function("window.signalsDashboard.priceChart.symbol === 'ETHUSDT' && window.signalsDashboard.priceChart.plot")
    # Every open signal's price is asked for, including the one without data: no 404, no error.
    page.wait_for_function("document.querySelector('#signals-body tr .c-now .ur') !== null")
    page.locator("#chart-symbol").select_option("USDCOP")
    page.wait_for_selector('#price-placeholder[data-kind="empty"]:not([hidden])')
    assert "No 1m candles for USDCOP yet" in page.locator("#price-placeholder").inner_text()
    assert page.locator("#price-latest").inner_text() == ""
    page.wait_for_timeout(500)
    # /health/ answers 503 while the system is down (no feed runs in this test): that
    # is its contract, and the browser logs it as a failed load; nothing else may fail.
    health_503 = [f for f in failed if f.startswith("503 ") and f.endswith("/health/")]
    assert [f for f in failed if f not in health_503] == [], failed
    assert len(console_errors) == len(health_503), console_errors
