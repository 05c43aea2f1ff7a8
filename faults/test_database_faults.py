"""PostgreSQL unreachable under a live web process (a TCP proxy the test controls sits
between daphne and the real server): the API answers 503 with a clear JSON body and
never a 500 page, open WebSockets stay up and say so, live delivery of signals
committed elsewhere continues, no partial write survives, and everything recovers
by itself when the database returns."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.conf import settings

from conftest import DaphneProcess, child_database_url
from faults.conftest import SIGNAL_BODY, http, signal_ids
from faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]


def _create_direct() -> int:
    from signals.services import signal_create

    return signal_create(**SIGNAL_BODY, source="direct").signal.id


async def _next_frame(ws, kind: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if frame["type"] == kind:
            return frame


@pytest.fixture
def proxied_daphne(transactional_db):
    db = settings.DATABASES["default"]
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)).start()
    url = child_database_url().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    server = DaphneProcess(extra_env={"DATABASE_URL": url, "WS_WATCHDOG_SECONDS": "0.5"}).start()
    yield server, proxy
    server.stop()
    proxy.stop()


def _post(server, token, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return http("POST", f"{server.http_url}/api/signals/", token=token, body=SIGNAL_BODY, headers=headers)


async def test_it_answers_503_keeps_sockets_up_and_recovers_when_the_database_goes_away(
        proxied_daphne, staff_api_token):
    server, proxy = proxied_daphne
    token = staff_api_token
    status, _, body = await asyncio.to_thread(_post, server, token)
    assert status == 201, body
    before = json.loads(body)["id"]
    async with websockets.connect(f"{server.ws_url}/ws/signals/?after_id={before}",
                                  additional_headers={"Authorization": f"Token {token}"}, open_timeout=10) as ws:
        # The socket opens before its replay reads the database: wait until it is live
        # (a pong comes only after the replay), so the outage meets an open session.
        await ws.send('{"type":"ping"}')
        assert (await _next_frame(ws, "pong", 10)) == {"type": "pong"}
        proxy.cut()
        # Every API request during the outage: 503, JSON, a reason, a retry hint.
        key = str(uuid.uuid4())
        for method, path, post_key in (("POST", "/api/signals/", key), ("GET", "/api/signals/", None),
                                       ("GET", f"/api/signals/{before}/", None), ("POST", "/api/signals/", key)):
            if method == "POST":
                status, headers, body = await asyncio.to_thread(_post, server, token, post_key)
            else:
                status, headers, body = await asyncio.to_thread(http, method, server.http_url + path, token=token)
            assert status == 503, (method, path, status, body[:300])
            assert headers.get("Content-Type", "").startswith("application/json")
            payload = json.loads(body)
            assert payload["code"] == "database_unavailable" and "retry" in payload["detail"]
            assert int(headers["Retry-After"]) > 0
        # The socket stays open and says so; it still answers pings.
        assert (await _next_frame(ws, "status", 10))["database"] == "unavailable"
        await ws.send('{"type":"ping"}')
        assert (await _next_frame(ws, "pong", 5)) == {"type": "pong"}
        # A signal committed by another process (its own database path) is still
        # delivered live: the doorbell carries the frame, no read is needed.
        direct = await database_sync_to_async(_create_direct)()
        assert (await _next_frame(ws, "new_signal", 10))["signal"]["id"] == direct

        proxy.restore()
        assert (await _next_frame(ws, "status", 15))["database"] == "ok"
        deadline = time.monotonic() + 15
        while True:
            status, _, body = await asyncio.to_thread(_post, server, token, key)
            if status == 201 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert status == 201, body
        after = json.loads(body)["id"]
        assert (await _next_frame(ws, "new_signal", 10))["signal"]["id"] == after
        # The retried Idempotency-Key made exactly one signal.
        status, _, again = await asyncio.to_thread(_post, server, token, key)
        assert status in (200, 201) and json.loads(again)["id"] == after
    # No partial write: exactly the signals that were confirmed, each with its outcome row.
    from signals.models import Signal, SignalOutcome

    assert await database_sync_to_async(signal_ids)() == [before, direct, after]
    assert await database_sync_to_async(SignalOutcome.objects.count)() == await database_sync_to_async(Signal.objects.count)()
