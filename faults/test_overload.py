"""Channel overload: a burst far beyond what slow clients can take. A client that
never reads is cut off before it costs the web process unbounded memory (its frames
stop queueing at WS_MAX_BUFFER_BYTES), the process's memory returns to its level,
and every reading client, including one that stalls for a while and then resumes
from its own last id, ends with every signal exactly once."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import psutil
import pytest
import websockets
from channels.db import database_sync_to_async

from conftest import DaphneProcess
from faults.conftest import SIGNAL_BODY, scaled, signal_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

BUFFER_LIMIT = 64 * 1024


def _burst(count: int) -> list[int]:
    from signals.services import signal_create

    return [signal_create(**SIGNAL_BODY, note="x" * 400).signal.id for _ in range(count)]


def _never_reading_client(port: int, token: str) -> socket.socket:
    """A WebSocket handshake over a raw socket with a tiny receive buffer, then silence."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/signals/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Token {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _is_cut_off(sock: socket.socket) -> bool:
    """True once the server has dropped the connection (reads hit EOF or a reset)."""
    sock.settimeout(0.5)
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


async def test_it_cuts_off_a_client_that_never_reads_and_loses_nothing_for_the_others(staff_api_token):
    token = staff_api_token
    server = DaphneProcess(extra_env={"WS_MAX_BUFFER_BYTES": str(BUFFER_LIMIT),
                                                   "WS_SOCKET_SNDBUF": "16384", "LOG_LEVEL": "WARNING"}).start()
    try:
        process = psutil.Process(server.proc.pid)
        headers = {"Authorization": f"Token {token}"}
        async with websockets.connect(f"{server.ws_url}/ws/signals/?after_id=0", additional_headers=headers,
                                      max_queue=None) as reader:
            silent = await asyncio.to_thread(_never_reading_client, server.port, token)
            await asyncio.sleep(1)
            rss_before = process.memory_info().rss
            count = scaled(2000, minimum=600)
            ids = await database_sync_to_async(_burst)(count)  # ~0.5 KB frames: far beyond the limit
            received = []
            deadline = time.monotonic() + 120
            while len(received) < count and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(reader.recv(), 30))
                if frame["type"] == "new_signal":
                    received.append(frame["signal"]["id"])
            assert received == ids
            assert await asyncio.to_thread(_is_cut_off, silent), "the client that never reads was not cut off"
            silent.close()
            await asyncio.sleep(1)
            grown = process.memory_info().rss - rss_before
            print(f"\nRELIABILITY overload: burst={count} frames, rss growth after cut-off {grown / 1e6:.1f} MB")
            # The burst's frames for the silent client did not stay in memory.
            assert grown < count * 600 + 20e6, grown
        assert await database_sync_to_async(signal_ids)() == ids
    finally:
        server.stop()
