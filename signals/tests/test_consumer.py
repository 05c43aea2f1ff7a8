"""SignalConsumer rules, through channels' WebsocketCommunicator and the real Redis
channel layer: auth, origin, replay, hand-over, gap fill, filters, client errors."""
from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from prometheus_client import REGISTRY
from rest_framework.authtoken.models import Token

from conftest import BackgroundWriter
from signals import broadcast, consumers, hub
from signals.services import demo_instruments_seed, signal_create
from signals_project.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


def _create(**overrides) -> int:
    fields = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                  take_profit="120", confidence=70)
    fields.update(overrides)
    return signal_create(**fields).signal.id


create = database_sync_to_async(_create)


@pytest.fixture
def setup_data(transactional_db):
    demo_instruments_seed()
    user = get_user_model().objects.create_user("wsuser", password="pw-123456")
    token = Token.objects.create(user=user).key
    return user, token


async def _connect(token: str, query: str = "", origin: bytes = b"http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())]
    comm = WebsocketCommunicator(application, f"/ws/signals/{query}", headers=headers)
    return comm


async def _receive_all(comm: WebsocketCommunicator, count: int, timeout: float = 5.0) -> list[dict]:
    frames = []
    for _ in range(count):
        frames.append(json.loads(await comm.receive_from(timeout=timeout)))
    return frames


async def _assert_silent(comm: WebsocketCommunicator, wait: float = 0.3) -> None:
    assert await comm.receive_nothing(timeout=wait), "unexpected extra frame"


async def test_it_refuses_an_anonymous_handshake(setup_data):
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[(b"origin", b"http://127.0.0.1"),
                                                                      (b"host", b"127.0.0.1")])
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_refuses_a_wrong_token_even_with_nothing_else(setup_data):
    comm = await _connect("not-a-token")
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_refuses_a_foreign_origin(setup_data):
    _, token = setup_data
    comm = await _connect(token, origin=b"http://evil.example.com")
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_accepts_a_session_cookie(setup_data, client):
    user, _ = setup_data
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[
        (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)])
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()


async def test_it_replays_everything_after_the_id_in_order_then_goes_live(setup_data):
    _, token = setup_data
    ids = [await create() for _ in range(5)]
    comm = await _connect(token, f"?after_id={ids[1]}")
    assert (await comm.connect())[0]
    replayed = await _receive_all(comm, 3)
    assert [f["signal"]["id"] for f in replayed] == ids[2:]
    assert all(f["type"] == "new_signal" for f in replayed)
    live_id = await create(symbol="ETHUSDT")
    live = await _receive_all(comm, 1)
    assert live[0]["signal"]["id"] == live_id and live[0]["signal"]["symbol"] == "ETHUSDT"
    await _assert_silent(comm)
    await comm.disconnect()


async def test_it_sends_only_live_signals_without_after_id(setup_data):
    _, token = setup_data
    await create()
    comm = await _connect(token)
    assert (await comm.connect())[0]
    await _assert_silent(comm)
    new_id = await create()
    assert (await _receive_all(comm, 1))[0]["signal"]["id"] == new_id
    await comm.disconnect()


async def test_it_closes_the_hand_over_race_with_no_gap_and_no_duplicate(setup_data, monkeypatch):
    """Signals committed while the replay is running arrive exactly once, in order."""
    from signals import delivery

    _, token = setup_data
    monkeypatch.setattr(delivery, "REPLAY_BATCH", 3)
    before = [await create() for _ in range(30)]
    writer = BackgroundWriter(_create, limit=40).start()
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    await asyncio.sleep(0.5)
    expected = before + await writer.stop()
    frames = await _receive_all(comm, len(expected), timeout=10)
    assert [f["signal"]["id"] for f in frames] == expected
    await _assert_silent(comm, 0.5)
    await comm.disconnect()


async def test_it_fills_from_the_database_when_doorbells_are_lost(setup_data, monkeypatch):
    _, token = setup_data
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    # Two signals whose doorbells never reach Redis (as if Redis dropped them)...
    monkeypatch.setattr(broadcast, "_publish", lambda message: False)
    lost = [await create(), await create()]
    monkeypatch.undo()
    # ...then one that rings: the client must get all three, in order.
    rung = await create()
    frames = await _receive_all(comm, 3)
    assert [f["signal"]["id"] for f in frames] == [*lost, rung]
    await _assert_silent(comm)
    await comm.disconnect()


async def test_it_recovers_a_lost_last_doorbell_without_a_reconnect(setup_data, monkeypatch):
    _, token = setup_data
    monkeypatch.setattr(hub, "WATCHDOG_INTERVAL_SECONDS", 0.2)
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    monkeypatch.setattr(broadcast, "_publish", lambda message: False)
    silent = await create()
    frames = await _receive_all(comm, 1, timeout=5)
    assert frames[0]["signal"]["id"] == silent
    await comm.disconnect()


async def test_it_drops_a_duplicate_doorbell(setup_data):
    _, token = setup_data
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    signal_id = await create()
    assert (await _receive_all(comm, 1))[0]["signal"]["id"] == signal_id
    from signals.models import Signal

    signal = await database_sync_to_async(Signal.objects.select_related("outcome").get)(pk=signal_id)
    event = await database_sync_to_async(broadcast.signal_event)(signal)
    from channels.layers import get_channel_layer

    await get_channel_layer().group_send(broadcast.SIGNALS_GROUP, event)
    await _assert_silent(comm, 0.5)
    await comm.disconnect()


async def test_it_filters_by_symbol_and_market_in_replay_and_live(setup_data):
    _, token = setup_data
    btc = await create(symbol="BTCUSDT")
    await create(symbol="ETHUSDT")
    cop = await create(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200")
    by_symbol = await _connect(token, "?after_id=0&symbol=btcusdt")
    by_market = await _connect(token, "?after_id=0&market=forex")
    assert (await by_symbol.connect())[0] and (await by_market.connect())[0]
    assert [f["signal"]["id"] for f in await _receive_all(by_symbol, 1)] == [btc]
    assert [f["signal"]["id"] for f in await _receive_all(by_market, 1)] == [cop]
    await create(symbol="ETHUSDT")
    btc2 = await create(symbol="BTCUSDT")
    assert [f["signal"]["id"] for f in await _receive_all(by_symbol, 1)] == [btc2]
    await _assert_silent(by_market)
    await _assert_silent(by_symbol)
    await by_symbol.disconnect()
    await by_market.disconnect()


async def test_it_answers_ping_with_pong(setup_data):
    _, token = setup_data
    comm = await _connect(token)
    assert (await comm.connect())[0]
    await comm.send_to(text_data='{"type":"ping"}')
    assert json.loads(await comm.receive_from()) == {"type": "pong"}
    await comm.disconnect()


async def test_it_answers_malformed_messages_with_an_error_frame_and_keeps_serving(setup_data):
    _, token = setup_data
    comm = await _connect(token)
    other = await _connect(token)
    assert (await comm.connect())[0] and (await other.connect())[0]
    for bad, code in (("{not json", "malformed_json"), ("[1,2]", "bad_message"), ('{"type":"hack"}', "unknown_type")):
        await comm.send_to(text_data=bad)
        frame = json.loads(await comm.receive_from())
        assert frame["type"] == "error" and frame["code"] == code and frame["detail"]
    await comm.send_to(text_data='{"type":"ping"}')
    assert json.loads(await comm.receive_from()) == {"type": "pong"}
    new_id = await create()
    assert (await _receive_all(other, 1))[0]["signal"]["id"] == new_id
    assert (await _receive_all(comm, 1))[0]["signal"]["id"] == new_id
    await comm.disconnect()
    await other.disconnect()


async def test_it_closes_an_oversized_message_with_a_reason(setup_data):
    _, token = setup_data
    comm = await _connect(token)
    other = await _connect(token)
    assert (await comm.connect())[0] and (await other.connect())[0]
    await comm.send_to(text_data="x" * (consumers.MAX_CLIENT_MESSAGE_BYTES + 1))
    closed = await comm.receive_output(timeout=2)
    assert closed["type"] == "websocket.close" and closed["code"] == consumers.CLOSE_TOO_BIG and "larger than" in closed["reason"]
    await other.send_to(text_data='{"type":"ping"}')
    assert json.loads(await other.receive_from()) == {"type": "pong"}
    await other.disconnect()


@pytest.mark.parametrize("query,reason", [
    ("?after_id=abc", "after_id must be a non-negative integer"),
    ("?after_id=-1", "after_id must be a non-negative integer"),
    ("?market=stocks", "market must be one of"),
    ("?symbol=BTC-USDT", "symbol must be"),
])
async def test_it_closes_a_bad_query_with_4400_and_a_reason(setup_data, query, reason):
    _, token = setup_data
    comm = await _connect(token, query)
    connected, _ = await comm.connect()
    assert connected
    closed = await comm.receive_output(timeout=2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4400 and reason in closed["reason"]


async def test_it_sends_outcome_frames_for_matching_signals(setup_data):
    from decimal import Decimal

    from signals.services import signal_outcome_close

    _, token = setup_data
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    signal_id = await create()
    await _receive_all(comm, 1)
    await database_sync_to_async(signal_outcome_close)(signal_id=signal_id, status="tp_hit", exit_price=Decimal("120"))
    frame = (await _receive_all(comm, 1))[0]
    assert frame["type"] == "outcome" and frame["signal_id"] == signal_id
    assert frame["outcome"]["status"] == "tp_hit" and frame["outcome"]["r_multiple"] == "2"
    await comm.disconnect()


async def test_it_refuses_a_websocket_on_any_other_path(setup_data):
    _, token = setup_data
    comm = WebsocketCommunicator(application, "/ws/other/", headers=[
        (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_refuses_a_token_of_an_inactive_user(setup_data):
    user, token = setup_data
    user.is_active = False
    await database_sync_to_async(user.save)()
    comm = await _connect(token)
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_accepts_a_token_client_that_sends_no_origin(setup_data):
    _, token = setup_data
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])
    connected, _ = await comm.connect()
    assert connected
    new_id = await create()
    assert (await _receive_all(comm, 1))[0]["signal"]["id"] == new_id
    await comm.disconnect()


async def test_it_refuses_a_wrong_token_that_sends_no_origin(setup_data):
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", b"Token not-a-token")])
    connected, _ = await comm.connect()
    assert connected is False


@pytest.mark.parametrize("origin", [b"http://evil.example.com", None])
async def test_it_refuses_a_session_cookie_from_a_foreign_or_missing_origin(setup_data, client, origin):
    user, _ = setup_data
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"host", b"127.0.0.1"), (b"cookie", cookie)] + ([(b"origin", origin)] if origin else [])
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=headers)
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_refuses_an_anonymous_handshake_without_origin(setup_data):
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[(b"host", b"127.0.0.1")])
    connected, _ = await comm.connect()
    assert connected is False


async def test_it_keeps_the_socket_open_and_retries_a_gap_fill_while_the_database_is_down(setup_data, monkeypatch):
    from django.db import OperationalError

    from signals import delivery

    _, token = setup_data
    comm = await _connect(token, "?after_id=0")
    assert (await comm.connect())[0]
    monkeypatch.setattr(broadcast, "_publish", lambda message: False)
    lost = await create()
    monkeypatch.undo()
    original, failures = delivery._fetch, []

    async def _down_once(*args, **kwargs):
        if not failures:
            failures.append(args)
            raise OperationalError("the database is unreachable")
        return await original(*args, **kwargs)

    monkeypatch.setattr(delivery, "_fetch", _down_once)
    rung = await create()  # its doorbell reveals the gap; the first fill fails
    frames = await _receive_all(comm, 2, timeout=10)
    assert [f["signal"]["id"] for f in frames] == [lost, rung] and failures
    await _assert_silent(comm)
    await comm.disconnect()


def _gauge(state: str) -> float:
    return REGISTRY.get_sample_value("signals_ws_connections_by_state", {"state": state}) or 0.0


def _replayed() -> float:
    return REGISTRY.get_sample_value("signals_ws_frames_replayed_total") or 0.0


async def test_it_counts_connections_by_state_and_the_frames_a_replay_sent(setup_data):
    _, token = setup_data
    for _ in range(3):
        await create()
    live_before, replaying_before = _gauge("live"), _gauge("replaying")
    replayed_before = _replayed()
    comm = await _connect(token, "?after_id=0")
    connected, _ = await comm.connect()
    assert connected
    assert len(await _receive_all(comm, 3)) == 3
    for _ in range(50):  # the state moves to live right after the replay's last frame
        if _gauge("live") == live_before + 1:
            break
        await asyncio.sleep(0.05)
    assert _gauge("live") == live_before + 1
    assert _gauge("replaying") == replaying_before
    assert _replayed() == replayed_before + 3
    await comm.disconnect()
    assert _gauge("live") == live_before
