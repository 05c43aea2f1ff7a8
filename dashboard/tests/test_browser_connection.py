"""How the dashboard behaves around its connection, in a real browser (Chromium via
Playwright, real daphne): the health pill never vouches for a state it cannot see,
an overloaded server's retry hint and a resync are honoured, and receipts tell a
returning user what arrived while they were away."""
from __future__ import annotations

import time

import pytest

from conftest import make_signal
from dashboard.tests.live_page import history_mark, login, row_ids, stop_daphne, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _first_socket_refused(page, refuse) -> list[tuple[float, str]]:
    """Route the page's WebSockets: the first attempt gets `refuse(ws_route)` (a
    server-like refusal), later ones reach the real server. Returns the attempts
    as (time, url), filled as they happen."""
    attempts: list[tuple[float, str]] = []

    def _route(ws_route):
        attempts.append((time.monotonic(), ws_route.url))
        if len(attempts) == 1:
            refuse(ws_route)
        else:
            ws_route.connect_to_server()

    page.route_web_socket("**/ws/signals/**", _route)
    return attempts


def _wait_attempts(page, attempts: list, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(attempts) < n:
        assert time.monotonic() < deadline, f"only {len(attempts)} WebSocket attempts"
        page.wait_for_timeout(100)  # lets Playwright deliver the route callbacks


def _health(page) -> tuple[str, str]:
    return page.evaluate("[document.getElementById('health').dataset.status, "
                         "document.getElementById('health-text').textContent]")


def test_it_marks_health_unknown_while_disconnected_and_refreshes_on_reconnect(restartable_server, page,
                                                                                staff_user, instruments):
    server = restartable_server
    checks: list[float] = []
    page.on("request", lambda r: checks.append(time.monotonic()) if r.url.endswith("/health/") else None)
    login(page, server)
    wait_state(page, "live", "ws")
    page.wait_for_function("!['stale', 'unknown', undefined].includes(document.getElementById('health').dataset.status)")

    mark = history_mark(page)
    stop_daphne(server)
    wait_state(page, "reconnecting", since=mark, timeout=5_000)
    page.wait_for_function("document.getElementById('health').dataset.status === 'stale'", timeout=3_000)
    assert _health(page)[1] == "Health unknown · offline"

    stopped_at = time.monotonic()
    server.start()
    wait_state(page, "live", since=mark, timeout=20_000)
    # A fresh reading is fetched on reconnect rather than the old one trusted again.
    page.wait_for_function("document.getElementById('health').dataset.status !== 'stale'", timeout=5_000)
    assert any(t > stopped_at for t in checks)
    assert not _health(page)[1].startswith(("Stale", "Health unknown · offline"))


def test_it_marks_health_stale_after_two_intervals_without_a_reading(server, page, staff_user, instruments):
    answered = {"n": 0}

    def _first_only(route):
        # The first check answers; later ones hang, as behind a stuck proxy.
        if answered["n"] == 0:
            answered["n"] += 1
            route.continue_()

    page.route("**/health/", _first_only)
    page.add_init_script("window.SIGNALS_PAGE_OPTIONS = {healthMs: 400};")
    login(page, server)
    page.wait_for_function("!['stale', 'unknown', undefined].includes(document.getElementById('health').dataset.status)")
    fresh_text = _health(page)[1]
    page.wait_for_function("document.getElementById('health').dataset.status === 'stale'", timeout=5_000)
    status, text = _health(page)
    assert text == f"Stale · {fresh_text}"
    assert "out of date" in page.locator("#health-updated").text_content()


def test_it_opens_health_components_with_their_reasons(server, page, staff_user, instruments):
    login(page, server)
    page.wait_for_selector("#health-components li", state="attached")
    page.locator("#health summary").click()
    items = page.locator("#health-components li")
    assert items.count() >= 3
    names = [n.lower() for n in page.locator("#health-components .hc-name").all_inner_texts()]
    assert "database" in names and "redis" in names
    # Feed status per market sits below the components.
    page.wait_for_selector('#health-markets li[data-market="crypto"]')
    crypto = page.locator('#health-markets li[data-market="crypto"]').inner_text()
    assert crypto.startswith("Crypto") and "open" in crypto and "BTCUSDT no data" in crypto
    # A component below its maximum says why.
    for i in range(items.count()):
        item = items.nth(i)
        value = item.locator(".hc-value").inner_text()
        if "/" in value:
            points, maximum = value.split(" · ")[-1].split("/")
            if int(points) < int(maximum):
                assert item.locator(".hc-reason").inner_text().strip(), value


def test_it_waits_as_long_as_an_overloaded_server_asks_before_reconnecting(server, page, staff_user,
                                                                            instruments):
    attempts = _first_socket_refused(page, lambda ws_route: ws_route.close(code=4503, reason="retry_after=2"))
    login(page, server)
    _wait_attempts(page, attempts, 2)
    mark = history_mark(page)
    wait_state(page, "live", "ws", since=max(0, mark - 1), timeout=10_000)
    waited = attempts[1][0] - attempts[0][0]
    # retry_after=2 plus at most a second of jitter (and this loaded machine's slack).
    assert 2.0 <= waited < 4.5, waited
    transports = page.evaluate("window.signalsDashboard.statusHistory.map(s => s.transport)")
    assert "sse" not in transports and "poll" not in transports  # an overload is not a reason to fall back


def test_it_reloads_from_the_server_when_told_to_resync(server, page, staff_user, instruments):
    first = make_signal().id
    snapshots: list[str] = []
    page.on("request", lambda r: snapshots.append(r.url) if "/dashboard/snapshot/" in r.url else None)

    def _ahead(ws_route):
        ws_route.send('{"type": "resync", "last_id": %d}' % first)
        ws_route.close(code=4409, reason="after_id is ahead of the newest signal")

    attempts = _first_socket_refused(page, _ahead)
    login(page, server)
    _wait_attempts(page, attempts, 2)
    wait_state(page, "live", "ws", timeout=10_000)
    assert snapshots, "the page did not reload its rows after the resync"
    assert len(attempts) >= 2 and f"after_id={first}" in attempts[-1][1]
    later = make_signal(symbol="ETHUSDT", entry_price="3000", stop_loss="2900", take_profit="3300").id
    page.wait_for_selector(f'#signals-body tr[data-id="{later}"]', timeout=3_000)
    assert row_ids(page) == [later, first]


def test_it_says_what_arrived_while_away_and_acknowledges_what_it_shows(server, page, staff_user, instruments):
    from signals.models import UserReceipt
    from signals.services import receipt_ack

    seen = make_signal().id
    missed = [make_signal().id for _ in range(3)]
    receipt_ack(user=staff_user, signal_id=seen)
    page.add_init_script("window.SIGNALS_PAGE_OPTIONS = {ackMs: 200};")
    login(page, server)
    page.wait_for_selector("#away:not([hidden])", timeout=5_000)
    assert page.locator("#away-text").inner_text() == "3 signals arrived while you were away."

    # The page shows them all, so it acknowledges the newest over the socket.
    deadline = time.monotonic() + 10
    while UserReceipt.objects.get(user=staff_user).last_ack_id != max(missed):
        assert time.monotonic() < deadline, "no ack for the newest signal on screen"
        time.sleep(0.2)
    page.get_by_role("button", name="Dismiss").click()
    assert page.locator("#away").is_hidden()
    page.reload()
    wait_state(page, "live", "ws")
    page.wait_for_timeout(500)
    assert page.locator("#away").is_hidden()  # nothing new since: no banner
