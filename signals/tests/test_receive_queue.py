"""The small ASGI receive queue for daphne WebSockets (signals.receive_queue): the
asyncio.Queue behaviour daphne and the consumer rely on, the probe of daphne's
internals, the swap on daphne's own code path, the fallback, and a real daphne."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from signals import receive_queue
from signals.receive_queue import ReceiveQueue


def test_it_finds_every_daphne_detail_the_swap_needs():
    # Fails the day daphne changes how it creates or feeds a connection's queue.
    assert receive_queue.receive_queue_probe() == []


async def test_it_hands_out_messages_first_in_first_out():
    queue = ReceiveQueue()
    for n in range(3):
        queue.put_nowait(n)
    assert [await queue.get() for _ in range(3)] == [0, 1, 2]
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(3)
    queue.put_nowait(4)
    assert await waiting == 3 and await queue.get() == 4


async def test_it_holds_no_container_while_idle():
    # What it is for: an idle connection's queue is two empty slots.
    queue = ReceiveQueue()
    queue.put_nowait("a")
    assert await queue.get() == "a"
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("b")
    assert await waiting == "b"
    assert queue._messages is None and queue._getters is None


async def test_a_cancelled_get_loses_no_message():
    queue = ReceiveQueue()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put_nowait("kept")
    assert await queue.get() == "kept"


async def test_a_get_cancelled_after_it_was_handed_a_message_puts_it_back_first():
    queue = ReceiveQueue()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("first")  # handed to the waiting get...
    queue.put_nowait("second")
    waiting.cancel()  # ...which is cancelled before it could return it
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [await queue.get(), await queue.get()] == ["first", "second"]


async def test_concurrent_gets_each_get_one_message():
    queue = ReceiveQueue()
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    getters[1].cancel()
    for n in range(2):
        queue.put_nowait(n)
    assert sorted([await getters[0], await getters[2]]) == [0, 1]
    assert getters[1].cancelled()


class _Protocol:
    """What daphne's WebSocketProtocol.applicationCreateWorked reads of its protocol."""

    def __init__(self, server):
        self.server = server
        self.request = type("Request", (), {"path": "/ws/signals/"})()
        self.client_addr = ["127.0.0.1", 4321]


async def test_it_takes_over_daphnes_queue_on_daphnes_own_code_path(monkeypatch):
    monkeypatch.setattr(receive_queue._Swap, "enabled", True)
    received: list[dict] = []
    adopted = {}

    async def app(scope, receive, send):
        receive = receive_queue.receive_queue_adopt(send.args[0], receive)
        adopted["receive"] = receive
        while len(received) < 3:
            received.append(await receive())

    server = Server(application=app, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never started
    protocol = _Protocol(server)
    server.connections = {protocol: {}}  # as Server.run() starts it
    # What daphne does for a new WebSocket: create the application (its queue and
    # task), then put the connect message into the queue it got back.
    queue = server.create_application(protocol, {"type": "websocket", "path": "/ws/signals/"})
    WebSocketProtocol.applicationCreateWorked(protocol, queue)
    protocol.application_queue.put_nowait({"type": "websocket.receive", "text": "early"})
    await asyncio.sleep(0.05)
    assert isinstance(protocol.application_queue, ReceiveQueue)
    assert adopted["receive"] == protocol.application_queue.get
    protocol.application_queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(server.connections[protocol]["application_instance"], 5)
    assert [m["type"] for m in received] == ["websocket.connect", "websocket.receive", "websocket.disconnect"]


async def test_it_keeps_daphnes_queue_when_the_probe_failed_or_receive_is_not_daphnes(monkeypatch, caplog):
    monkeypatch.setattr(receive_queue, "receive_queue_probe", lambda: ["daphne WebSocketProtocol changed"])
    with caplog.at_level(logging.WARNING, logger="signals.receive_queue"):
        assert receive_queue.receive_queue_enable() is False
    assert "swap OFF" in caplog.text and "WebSocketProtocol changed" in caplog.text
    queue = asyncio.Queue()
    protocol = type("P", (), {"application_queue": queue})()
    assert receive_queue.receive_queue_adopt(protocol, queue.get) == queue.get
    assert protocol.application_queue is queue

    monkeypatch.setattr(receive_queue._Swap, "enabled", True)
    other = asyncio.Queue()  # not the queue daphne's protocol puts into
    assert receive_queue.receive_queue_adopt(protocol, other.get) == other.get
    assert receive_queue.receive_queue_adopt(None, queue.get) == queue.get
    assert protocol.application_queue is queue


@pytest.fixture
def token(transactional_db):
    user = get_user_model().objects.create_user("rq", password="pw-123456")
    return Token.objects.create(user=user).key


@pytest.mark.slow
async def test_it_carries_every_client_frame_under_daphne(shared_daphne, token):
    async with websockets.connect(f"{shared_daphne.ws_url}/ws/signals/",
                                  additional_headers={"Authorization": f"Token {token}"}, open_timeout=10) as ws:
        for _ in range(5):
            await ws.send('{"type":"ping"}')
        for _ in range(5):
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
        await ws.send("not json")
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["code"] == "malformed_json"
    assert "receive queue swap on" in shared_daphne.log_path.read_text()
