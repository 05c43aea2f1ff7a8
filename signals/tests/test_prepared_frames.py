"""The fenced fan-out fast path (signals.prepared_frames): the probe of daphne,
Twisted and autobahn internals, the fallback when one is missing, the fast path in
use under a real daphne, and a failing write ending in a resume with nothing lost."""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import urllib.request

import pytest
import websockets
from autobahn.twisted.websocket import WebSocketServerFactory
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from twisted.internet import task

from signals import metrics, prepared_frames
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
    user = get_user_model().objects.create_user("fast", password="pw-123456", is_staff=True)
    return Token.objects.create(user=user).key


def test_it_finds_every_internal_the_fast_path_needs():
    # Fails the day daphne, Twisted or autobahn rename what the fast path relies on.
    assert prepared_frames.fast_path_probe() == []


def test_it_falls_back_to_asgi_sends_with_a_warning_when_an_internal_is_missing(monkeypatch, caplog):
    monkeypatch.setattr(prepared_frames._FastPath, "enabled", True)
    monkeypatch.setattr(prepared_frames, "fast_path_probe", lambda: ["twisted tcp.Connection._tempDataBuffer"])
    with caplog.at_level(logging.WARNING, logger="signals.prepared_frames"):
        assert prepared_frames.fast_path_enable() is False
    assert "fast path OFF" in caplog.text and "_tempDataBuffer" in caplog.text

    class _Protocol:
        sendPreparedMessage = factory = None

    seen = {}

    async def inner(scope, receive, send):
        seen["protocol"] = prepared_frames.protocol_from_scope(scope)

    def handle_reply(protocol, message):
        pass

    app = prepared_frames.expose_daphne_protocol(inner)
    asyncio.run(app({"type": "websocket"}, None, functools.partial(handle_reply, _Protocol())))
    assert seen["protocol"] is None


class _DeadSocket:
    def send(self, data):
        raise ConnectionResetError("peer vanished")


class _BrokenTransport:
    """A Twisted TCP transport whose socket write fails."""
    TLS = False
    dataBuffer = b""
    _tempDataBuffer: list = []
    connected = 1
    disconnecting = 0
    socket = _DeadSocket()

    def write(self, data):
        raise AssertionError("unreachable: the socket send raises first")


class _Protocol:
    STATE_OPEN = 3
    state = 3
    _perMessageCompress = None

    def __init__(self):
        self.factory = WebSocketServerFactory(reactor=task.Clock())
        self.transport = _BrokenTransport()
        self.dropped = False

    def dropConnection(self, abort=False):
        self.dropped = True


def _communicator(token: str, query: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/signals/{query}", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])


async def test_it_closes_a_client_whose_fast_write_fails_and_it_resumes_with_nothing_lost(token):
    from signals.consumers import CLOSE_SERVER_ERROR

    first = await create()
    broken = _communicator(token, "?after_id=0")
    broken.scope["extensions"] = {prepared_frames.SCOPE_KEY: _Protocol()}
    healthy = _communicator(token, f"?after_id={first}")
    assert (await broken.connect())[0] and (await healthy.connect())[0]
    # The replay goes through ASGI sends and arrives.
    assert json.loads(await broken.receive_from(timeout=5))["signal"]["id"] == first
    failures = metrics.FANOUT_WRITE_FAILURES._value.get()
    missed = await create()
    closed = await broken.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_SERVER_ERROR
    assert metrics.FANOUT_WRITE_FAILURES._value.get() == failures + 1
    # The other client of the same round is unaffected.
    assert json.loads(await healthy.receive_from(timeout=5))["signal"]["id"] == missed
    # The client resumes from the last id it really got: the missed frame comes back once.
    resumed = _communicator(token, f"?after_id={first}")
    assert (await resumed.connect())[0]
    assert json.loads(await resumed.receive_from(timeout=5))["signal"]["id"] == missed
    assert await resumed.receive_nothing(timeout=0.3)
    for comm in (healthy, resumed):
        await comm.disconnect()


@pytest.mark.slow
async def test_it_uses_the_fast_path_under_daphne(shared_daphne, token):
    async with websockets.connect(f"{shared_daphne.ws_url}/ws/signals/",
                                  additional_headers={"Authorization": f"Token {token}"}, open_timeout=10) as ws:
        # The first may still meet the tail of the (empty) replay; the second is live.
        for _ in range(2):
            signal_id = await create()
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["signal"]["id"] == signal_id
    with urllib.request.urlopen(f"{shared_daphne.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    prepared = [line for line in text.splitlines() if line.startswith('signals_fanout_frames_total{path="prepared"}')]
    assert prepared and float(prepared[0].split()[-1]) >= 1, [l for l in text.splitlines() if 'fanout' in l]
    assert "fast path on" in shared_daphne.log_path.read_text()
