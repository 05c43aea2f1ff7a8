"""Driving the live dashboard page in tests: log in, publish, read rows and the
connection badge's state history (window.signalsDashboard.statusHistory)."""
from __future__ import annotations

import json
import subprocess
import urllib.request

from playwright.sync_api import Page

from conftest import DaphneProcess

# Replaces window.WebSocket / EventSource by stand-ins that fail like a proxy that
# blocks them, while window.__block* is true (the page can lift the block later).
BLOCK_TRANSPORTS = """
(() => {
  const RealWS = window.WebSocket;
  const RealES = window.EventSource;
  window.__blockWebSocket = %(ws)s;
  window.__blockEventSource = %(es)s;
  window.__wsAttempts = 0;
  class BlockedWS extends EventTarget {
    constructor(url) {
      super();
      this.url = url; this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror && this.onerror(new Event('error'));
        this.onclose && this.onclose({ code: 1006, reason: '', wasClean: false });
      }, 20);
    }
    send() { throw new Error('not open'); }
    close() {}
  }
  function WS(url, protocols) {
    window.__wsAttempts += 1;
    return window.__blockWebSocket ? new BlockedWS(url) : new RealWS(url, protocols);
  }
  Object.assign(WS, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = WS;
  class BlockedES extends EventTarget {
    constructor(url) {
      super();
      this.url = url; this.readyState = 0;
      setTimeout(() => { this.readyState = 2; this.onerror && this.onerror(new Event('error')); }, 20);
    }
    close() { this.readyState = 2; }
  }
  function ES(url, init) { return window.__blockEventSource ? new BlockedES(url) : new RealES(url, init); }
  Object.assign(ES, { CONNECTING: 0, OPEN: 1, CLOSED: 2 });
  window.EventSource = ES;
})();
"""


def feed_options(**options) -> str:
    return f"window.SIGNALS_FEED_OPTIONS = {json.dumps(options)};"


def login(page: Page, server: DaphneProcess, path: str = "/") -> None:
    page.goto(f"{server.http_url}/accounts/login/?next={urllib.request.quote(path)}")
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill("staff-pass-123")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.http_url}{path}")


def post_signal(server: DaphneProcess, token: str, **overrides) -> int:
    body = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                take_profit="120", confidence=80, timeframe="1h", source="manual")
    body.update(overrides)
    request = urllib.request.Request(
        f"{server.http_url}/api/signals/", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        return json.loads(response.read())["id"]



def row_ids(page: Page) -> list[int]:
    return page.eval_on_selector_all("#signals-body tr[data-id]", "rows => rows.map(r => Number(r.dataset.id))")


def history_mark(page: Page) -> int:
    return page.evaluate("window.signalsDashboard.statusHistory.length")


def wait_state(page: Page, state: str, transport: str | None = None, since: int = 0, timeout: float = 10_000) -> None:
    """Wait until the badge has entered `state` (after history entry `since`) and is in it now."""
    page.wait_for_function(
        """([state, transport, since]) => {
            const history = window.signalsDashboard.statusHistory.slice(since);
            const last = history[history.length - 1];
            return last && last.state === state && (transport === null || last.transport === transport);
        }""",
        arg=[state, transport, since], timeout=timeout,
    )


def assert_once(page: Page, signal_id: int, timeout: float = 5_000) -> None:
    page.wait_for_selector(f'#signals-body tr[data-id="{signal_id}"]', timeout=timeout)
    assert page.locator(f'#signals-body tr[data-id="{signal_id}"]').count() == 1
    ids = row_ids(page)
    assert len(ids) == len(set(ids)), f"duplicate rows: {ids}"
    assert ids == sorted(ids, reverse=True), f"rows not newest first: {ids}"


def stop_daphne(server: DaphneProcess, grace: float = 3.0) -> None:
    """Stop daphne, killing it after `grace` seconds.

    Measured here: daphne sometimes never exits on SIGTERM when an HTTP request is
    in flight (an asgiref worker thread waits forever on the stopped event loop),
    and DaphneProcess.stop() then waits its full 10 s before killing. A killed
    server is as much "stopped" as a terminated one for what these tests check.
    """
    proc = server.proc
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    server.proc = None
