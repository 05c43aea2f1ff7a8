"""Handshake admission (signals.admission) and resync: an overloaded process answers
new connections with 4503 and a retry hint; a client ahead of the server is told to
resync with 4409; replays run with bounded concurrency."""
from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from signals import admission, delivery
from signals.services import demo_instruments_seed, signal_create
from signals_project.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


def _create() -> int:
    return signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                         take_profit="120", confidence=70).signal.id


create = database_sync_to_async(_create)


@pytest.fixture
def token(transactional_db):
    demo_instruments_seed()
    user = get_user_model().objects.create_user("storm", password="pw-123456")
    return Token.objects.create(user=user).key


def _comm(token: str, query: str = "") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/signals/{query}", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])


async def test_it_tells_a_client_ahead_of_the_server_to_resync(token):
    latest = [await create() for _ in range(2)][-1]
    comm = _comm(token, f"?after_id={latest + 5}")
    assert (await comm.connect())[0]
    assert json.loads(await comm.receive_from(timeout=5)) == {"type": "resync", "last_id": latest}
    closed = await comm.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4409 and str(latest) in closed["reason"]


async def test_it_accepts_a_client_exactly_at_the_newest_id(token):
    latest = await create()
    comm = _comm(token, f"?after_id={latest}")
    assert (await comm.connect())[0]
    assert await comm.receive_nothing(timeout=0.3)
    new_id = await create()
    assert json.loads(await comm.receive_from(timeout=5))["signal"]["id"] == new_id
    await comm.disconnect()


async def test_it_answers_4503_with_a_retry_hint_when_too_many_connections_are_pending(token, settings, monkeypatch):
    settings.WS_MAX_PENDING = 2
    settings.WS_REPLAY_CONCURRENCY = 1
    first = await create()
    gate = asyncio.Event()
    original = delivery._fetch

    async def _slow_fetch(*args, **kwargs):
        await gate.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(delivery, "_fetch", _slow_fetch)
    held = [_comm(token, "?after_id=0") for _ in range(2)]
    for comm in held:
        assert (await comm.connect())[0]
    assert admission.local_admission().pending == 2
    refused = _comm(token, "?after_id=0")
    assert (await refused.connect())[0]
    closed = await refused.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == admission.CLOSE_OVERLOADED
    seconds = int(closed["reason"].removeprefix("retry_after="))
    assert 1 <= seconds <= 30
    # Once the pending replays finish, the process admits again and nothing was lost.
    gate.set()
    for comm in held:
        assert json.loads(await comm.receive_from(timeout=5))["signal"]["id"] == first
    assert admission.local_admission().pending == 0
    later = _comm(token, "?after_id=0")
    assert (await later.connect())[0]
    assert json.loads(await later.receive_from(timeout=5))["signal"]["id"] == first
    for comm in (*held, later):
        await comm.disconnect()


async def test_it_runs_at_most_the_configured_number_of_replays_at_once(token, settings, monkeypatch):
    settings.WS_REPLAY_CONCURRENCY = 2
    ids = [await create() for _ in range(7)]
    running = peak = 0
    original = delivery._fetch

    async def _counting_fetch(*args, **kwargs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.05)
            return await original(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(delivery, "_fetch", _counting_fetch)
    # Different resume points: identical replays would share one read.
    comms = [_comm(token, f"?after_id={ids[i]}") for i in range(6)]
    await asyncio.gather(*(c.connect() for c in comms))
    for i, comm in enumerate(comms):
        assert json.loads(await comm.receive_from(timeout=10))["signal"]["id"] == ids[i + 1]
    assert peak == 2
    for comm in comms:
        await comm.disconnect()


async def test_it_shares_one_read_between_clients_resuming_from_the_same_id(token, monkeypatch):
    ids = [await create() for _ in range(3)]
    calls = []
    original = delivery._fetch

    async def _counting_fetch(*args, **kwargs):
        calls.append(args)
        await asyncio.sleep(0.05)
        return await original(*args, **kwargs)

    monkeypatch.setattr(delivery, "_fetch", _counting_fetch)
    comms = [_comm(token, f"?after_id={ids[0]}") for _ in range(20)]
    await asyncio.gather(*(c.connect() for c in comms))
    for comm in comms:
        frames = [json.loads(await comm.receive_from(timeout=10)) for _ in range(2)]
        assert [f["signal"]["id"] for f in frames] == ids[1:]
        assert await comm.receive_nothing(timeout=0.1)
    assert len(calls) == 1, calls
    for comm in comms:
        await comm.disconnect()
