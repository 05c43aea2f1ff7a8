"""Live delivery through real daphne processes and a real `websockets` client over
loopback: auth, replay, hand-over, filters, close reasons, two web processes sharing
Redis, and a Redis restart in the middle of a session."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from conftest import BackgroundWriter, DaphneProcess, RedisProcess
from signals.services import demo_instruments_seed, signal_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BODY = {"symbol": "BTCUSDT", "direction": "long", "entry_price": "100", "stop_loss": "90",
        "take_profit": "120", "confidence": 70}


def _create(**overrides) -> int:
    return signal_create(**{**BODY, **overrides}).signal.id


create = database_sync_to_async(_create)


def _post_signal(server: DaphneProcess, token: str, **overrides) -> int:
    request = urllib.request.Request(
        f"{server.http_url}/api/signals/", data=json.dumps({**BODY, **overrides}).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["id"]


@pytest.fixture
def staff_token_live(transactional_db):
    demo_instruments_seed()
    user = get_user_model().objects.create_user("live", password="pw-123456", is_staff=True)
    return Token.objects.create(user=user).key


def _ws(server: DaphneProcess, token: str | None, query: str = ""):
    headers = {"Authorization": f"Token {token}"} if token else {}
    return websockets.connect(f"{server.ws_url}/ws/signals/{query}", additional_headers=headers,
                              origin=f"http://127.0.0.1:{server.port}", open_timeout=10)


async def _ids(ws, count: int, timeout: float = 5.0) -> list[int]:
    out = []
    for _ in range(count):
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        assert frame["type"] == "new_signal"
        out.append(frame["signal"]["id"])
    return out


async def _silent(ws, wait: float = 0.4) -> None:
    with pytest.raises(asyncio.TimeoutError):
        frame = await asyncio.wait_for(ws.recv(), wait)
        pytest.fail(f"unexpected frame {frame}")


async def test_it_refuses_an_unauthenticated_handshake_with_403(shared_daphne, staff_token_live):
    with pytest.raises(websockets.InvalidStatus) as exc:
        async with _ws(shared_daphne, None):
            pass
    assert exc.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        async with _ws(shared_daphne, "wrong-token"):
            pass


async def test_it_replays_then_delivers_live_over_a_real_server(shared_daphne, staff_token_live):
    first = [await create() for _ in range(3)]
    async with _ws(shared_daphne, staff_token_live, f"?after_id={first[0]}") as ws:
        assert await _ids(ws, 2) == first[1:]
        live = await asyncio.to_thread(_post_signal, shared_daphne, staff_token_live)
        assert await _ids(ws, 1) == [live]
        await _silent(ws)


async def test_it_hands_over_from_replay_to_live_without_gaps_over_a_real_server(shared_daphne, staff_token_live):
    before = [await create() for _ in range(1200)]  # more than one replay batch
    writer = BackgroundWriter(_create, limit=30).start()
    async with _ws(shared_daphne, staff_token_live, "?after_id=0") as ws:
        await asyncio.sleep(0.3)
        expected = before + await writer.stop()
        assert await _ids(ws, len(expected), timeout=10) == expected
        await _silent(ws)


async def test_it_filters_over_a_real_server(shared_daphne, staff_token_live):
    async with _ws(shared_daphne, staff_token_live, "?symbol=ETHUSDT") as eth, \
            _ws(shared_daphne, staff_token_live, "?market=forex") as forex:
        await create()
        eth_id = await create(symbol="ETHUSDT")
        cop_id = await create(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4100")
        assert await _ids(eth, 1) == [eth_id]
        assert await _ids(forex, 1) == [cop_id]
        await _silent(eth)
        await _silent(forex)


async def test_it_closes_with_a_code_and_a_reason_the_client_can_read(shared_daphne, staff_token_live):
    async with _ws(shared_daphne, staff_token_live, "?after_id=nope") as ws:
        with pytest.raises(websockets.ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 5)
    assert exc.value.rcvd.code == 4400
    assert "after_id must be a non-negative integer" in exc.value.rcvd.reason
    async with _ws(shared_daphne, staff_token_live) as ws:
        await ws.send("y" * 5000)
        with pytest.raises(websockets.ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 5)
    assert exc.value.rcvd.code == 4413 and "larger than" in exc.value.rcvd.reason


async def test_it_delivers_across_two_web_processes_sharing_redis(transactional_db, staff_token_live):
    one, two = DaphneProcess().start(), DaphneProcess().start()
    try:
        async with _ws(one, staff_token_live) as a, _ws(two, staff_token_live) as b:
            via_one = await asyncio.to_thread(_post_signal, one, staff_token_live)
            via_two = await asyncio.to_thread(_post_signal, two, staff_token_live, symbol="SOLUSDT")
            assert await _ids(a, 2) == [via_one, via_two]
            assert await _ids(b, 2) == [via_one, via_two]
            await _silent(a)
            await _silent(b)
    finally:
        one.stop()
        two.stop()


async def test_it_loses_nothing_when_redis_restarts_mid_session(transactional_db, staff_token_live):
    redis_server = RedisProcess()
    redis_server.start()
    server = DaphneProcess(extra_env={"REDIS_URL": redis_server.url, "WS_WATCHDOG_SECONDS": "0.5"}).start()
    try:
        async with _ws(server, staff_token_live, "?after_id=0") as ws:
            before = await asyncio.to_thread(_post_signal, server, staff_token_live)
            assert await _ids(ws, 1) == [before]
            redis_server.stop()
            # Written while Redis is down: committed, its doorbell lost.
            during = await asyncio.to_thread(_post_signal, server, staff_token_live)
            redis_server.start()
            assert await _ids(ws, 1, timeout=10) == [during]
            after = await asyncio.to_thread(_post_signal, server, staff_token_live)
            assert await _ids(ws, 1, timeout=10) == [after]
            await _silent(ws)
    finally:
        server.stop()
        redis_server.stop()



async def test_it_survives_a_storm_of_150_simultaneous_handshakes(shared_daphne, staff_token_live):
    """A reconnect storm is normal life (every browser reconnects after a deploy)."""
    async def _one():
        ws = await _ws(shared_daphne, staff_token_live)
        return ws

    sockets = await asyncio.gather(*(_one() for _ in range(150)), return_exceptions=True)
    failures = [s for s in sockets if isinstance(s, BaseException)]
    try:
        assert not failures, f"{len(failures)} handshakes failed, first: {failures[0]!r}"
        new_id = await create()
        for ws in sockets:
            assert await _ids(ws, 1, timeout=15) == [new_id]
    finally:
        await asyncio.gather(*(s.close() for s in sockets if not isinstance(s, BaseException)))
