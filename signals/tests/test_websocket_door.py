"""The WebSocket door (signals.routing): one coroutine per connection, holding neither
middleware frames nor the scope once the handshake is decided. Memory per idle
connection is a benchmark target (BENCHMARKS.md); these pin what keeps it small."""
from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from signals import hub, routing
from signals.consumers import SignalConsumer
from signals_project.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(transactional_db):
    user = get_user_model().objects.create_user("door", password="pw-123456")
    return Token.objects.create(user=user).key


async def test_an_idle_connection_is_one_coroutine_waiting_on_receive(token):
    comm = WebsocketCommunicator(application, "/ws/signals/", headers=[
        (b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])
    assert (await comm.connect())[0]
    await comm.send_to(text_data='{"type":"ping"}')
    assert await comm.receive_from(timeout=5) == '{"type":"pong"}'
    door = comm.future.get_coro()
    assert door.cr_code is routing.websocket_door.__code__
    # Nothing between the door and the receive it waits on (no router or middleware).
    assert door.cr_await.cr_code is asyncio.Queue.get.__code__
    assert "scope" not in door.cr_frame.f_locals
    [consumer] = hub.local_hub().clients
    assert isinstance(consumer, SignalConsumer)
    assert consumer.scope is None  # dropped once the handshake was decided
    assert vars(consumer) == {}  # every attribute in a slot: no instance dict
    await comm.disconnect()
    assert not hub.local_hub().clients
