"""Database reads of WebSocket connections hand their pooled connection back."""
from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from signals.services import demo_instruments_seed
from signals_project.asgi import application


async def _connect_once(token: str) -> None:
    comm = WebsocketCommunicator(application, "/ws/signals/?after_id=0",
                                 headers=[(b"host", b"127.0.0.1"), (b"authorization", f"Token {token}".encode())])
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data='{"type":"ping"}')
    assert '"pong"' in await comm.receive_from(timeout=5)
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_websocket_handshakes_and_replays_return_their_pooled_connections():
    pool = connection.pool
    assert pool is not None, "the PostgreSQL settings use a connection pool (DB_POOL_MAX_SIZE)"
    demo_instruments_seed()
    token = Token.objects.create(user=get_user_model().objects.create_user("pooluser")).key
    # A handshake reads the token's user and the newest id, a replay reads signals,
    # each on a worker thread. Every asyncio.run() is a new event loop with new
    # worker threads: a read that kept its connection would hold a slot per loop
    # and exhaust the pool (PoolTimeout) before the last round.
    def checked_out() -> int:
        stats = pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]

    before = checked_out()  # this thread's own, and any an earlier test left behind
    for _ in range(settings.DB_POOL_MAX_SIZE + 5):
        asyncio.run(_connect_once(token))
    assert checked_out() <= before, pool.get_stats()
