"""Amendment frames and delivery receipts over the WebSocket: `signal_event` live and
replayed with `after_event_id` (in id order, filtered like signals, never twice),
`ack` frames stored as the user's receipt (throttled, monotonic across reconnects)
and read back by GET /api/me/."""
from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from signals import receipts
from signals.models import UserReceipt
from signals.services import demo_instruments_seed, signal_create, signal_event_create
from signals_project.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def publisher(transactional_db):
    demo_instruments_seed()
    user = get_user_model().objects.create_user("pub", password="pw-123456", is_staff=True)
    return user, Token.objects.create(user=user).key


def _signal(user, symbol="BTCUSDT") -> int:
    return signal_create(symbol=symbol, direction="long", entry_price="100", stop_loss="90", take_profit="120",
                         confidence=70, created_by=user).signal.id


def _move_stop(user, signal_id: int, price: str) -> int:
    return signal_event_create(signal_id=signal_id, event_type="move_stop", price=price, created_by=user).id


signal = database_sync_to_async(_signal)
move_stop = database_sync_to_async(_move_stop)


def _comm(token: str, query: str = "") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/signals/{query}", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])


async def _frames(comm, count: int) -> list[dict]:
    return [json.loads(await comm.receive_from(timeout=5)) for _ in range(count)]


async def test_it_pushes_an_amendment_live_as_a_signal_event_frame(publisher):
    user, token = publisher
    signal_id = await signal(user)
    comm = _comm(token)
    assert (await comm.connect())[0]
    event_id = await move_stop(user, signal_id, "95")
    frame = (await _frames(comm, 1))[0]
    assert frame["type"] == "signal_event" and frame["signal_id"] == signal_id
    assert frame["event"]["id"] == event_id and frame["event"]["type"] == "move_stop"
    assert frame["event"]["price"] == "95" and frame["event"]["created_by"] == "pub"
    assert set(frame["event"]) == {"id", "type", "price", "reason", "created_at", "created_by"}
    await comm.disconnect()


async def test_it_replays_amendments_after_the_signals_in_id_order_filtered_then_goes_live(publisher):
    user, token = publisher
    btc = await signal(user)
    eth = await signal(user, "ETHUSDT")
    first = await move_stop(user, btc, "91")
    await move_stop(user, eth, "91")
    second = await move_stop(user, btc, "92")
    third = await move_stop(user, btc, "93")
    comm = _comm(token, f"?after_id=0&after_event_id={first}&symbol=BTCUSDT")
    assert (await comm.connect())[0]
    frames = await _frames(comm, 3)
    assert [f["type"] for f in frames] == ["new_signal", "signal_event", "signal_event"]
    assert frames[0]["signal"]["id"] == btc
    assert [f["event"]["id"] for f in frames[1:]] == [second, third]
    assert await comm.receive_nothing(timeout=0.3)
    await move_stop(user, eth, "92")  # filtered out
    live = await move_stop(user, btc, "94")
    assert (await _frames(comm, 1))[0]["event"]["id"] == live
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_it_does_not_replay_amendments_without_after_event_id(publisher):
    user, token = publisher
    btc = await signal(user)
    await move_stop(user, btc, "91")
    comm = _comm(token, "?after_id=0")
    assert (await comm.connect())[0]
    assert [f["type"] for f in await _frames(comm, 1)] == ["new_signal"]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_it_never_sends_a_replayed_amendment_twice_when_its_doorbell_arrives_late(publisher):
    from signals import hub

    user, token = publisher
    btc = await signal(user)
    event_id = await move_stop(user, btc, "91")
    comm = _comm(token, "?after_id=0&after_event_id=0")
    assert (await comm.connect())[0]
    frames = await _frames(comm, 2)
    assert frames[1]["event"]["id"] == event_id
    # The same doorbell again, as if it had been in flight during the replay.
    from signals.models import SignalEvent

    event = await database_sync_to_async(SignalEvent.objects.select_related("signal", "created_by").get)(pk=event_id)
    from signals.delivery import signal_event_frame

    frame = await database_sync_to_async(signal_event_frame)(event)
    await hub.local_hub().fan_out({"type": "signal.event", "id": event_id, "signal_id": btc,
                                   "symbol": "BTCUSDT", "market": "crypto", "frame": frame})
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def _receipt(user) -> int | None:
    return await database_sync_to_async(
        lambda: UserReceipt.objects.filter(user=user).values_list("last_ack_id", flat=True).first())()


async def _wait_receipt(user, value: int, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await _receipt(user) != value:
        assert asyncio.get_running_loop().time() < deadline, f"receipt is {await _receipt(user)}, wanted {value}"
        await asyncio.sleep(0.05)


async def test_it_stores_acks_as_a_monotonic_receipt_across_reconnects(publisher, settings):
    settings.WS_ACK_INTERVAL_SECONDS = 0.1
    user, token = publisher
    ids = [await signal(user) for _ in range(3)]
    comm = _comm(token, "?after_id=0")
    assert (await comm.connect())[0]
    await _frames(comm, 3)
    await comm.send_to(text_data=json.dumps({"type": "ack", "id": ids[1]}))
    await _wait_receipt(user, ids[1])
    await comm.disconnect()
    again = _comm(token, f"?after_id={ids[1]}")
    assert (await again.connect())[0]
    await again.send_to(text_data=json.dumps({"type": "ack", "id": ids[0]}))  # an older id never lowers it
    await asyncio.sleep(0.3)
    assert await _receipt(user) == ids[1]
    await again.send_to(text_data=json.dumps({"type": "ack", "id": ids[2]}))
    await _wait_receipt(user, ids[2])
    await again.disconnect()


async def test_it_throttles_ack_writes_and_keeps_the_highest(publisher, settings, monkeypatch):
    settings.WS_ACK_INTERVAL_SECONDS = 0.5
    user, token = publisher
    ids = [await signal(user) for _ in range(30)]
    writes = []
    original = receipts._write

    async def _counting(user_, signal_id):
        writes.append(signal_id)
        return await original(user_, signal_id)

    monkeypatch.setattr(receipts, "_write", _counting)
    comm = _comm(token)
    assert (await comm.connect())[0]
    for signal_id in ids:
        await comm.send_to(text_data=json.dumps({"type": "ack", "id": signal_id}))
    await _wait_receipt(user, ids[-1])
    # 30 acks: one write at once, then at most one per interval, the highest id last.
    assert writes[-1] == ids[-1] and writes == sorted(set(writes)) and len(writes) <= 3, writes
    await comm.disconnect()


@pytest.mark.parametrize("bad", ['{"type":"ack"}', '{"type":"ack","id":"7"}', '{"type":"ack","id":-1}',
                                 '{"type":"ack","id":true}', '{"type":"ack","id":1.5}'])
async def test_it_answers_a_malformed_ack_with_an_error_frame(publisher, bad):
    _, token = publisher
    comm = _comm(token)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=bad)
    frame = json.loads(await comm.receive_from(timeout=5))
    assert frame["type"] == "error" and frame["code"] == "bad_ack"
    await comm.disconnect()


def test_it_reports_me_with_last_ack_and_unseen(publisher, client):
    from signals.services import receipt_ack

    user, token = publisher
    ids = [_signal(user) for _ in range(5)]
    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json() == {"username": "pub", "last_ack_id": 0, "unseen": 5}
    receipt_ack(user=user, signal_id=ids[1])
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {token}").json() == {
        "username": "pub", "last_ack_id": ids[1], "unseen": 3}


def test_it_refuses_me_to_anonymous_clients(transactional_db, client):
    assert client.get("/api/me/").status_code in (401, 403)
