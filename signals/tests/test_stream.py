"""Server-Sent Events fallback against a real daphne: auth, replay-then-live, event
ids, Last-Event-ID resume, filters and bad input."""
from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from signals.services import demo_instruments_seed, signal_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BODY = {"symbol": "BTCUSDT", "direction": "long", "entry_price": "100", "stop_loss": "90",
        "take_profit": "120", "confidence": 70}


create = database_sync_to_async(lambda **kw: signal_create(**{**BODY, **kw}).signal.id)


@pytest.fixture
def token(transactional_db):
    demo_instruments_seed()
    user = get_user_model().objects.create_user("sse", password="pw-123456")
    return Token.objects.create(user=user).key


class SSEClient:
    """Minimal EventSource over a raw loopback socket (no extra dependency)."""

    def __init__(self, port: int, path: str, headers: dict[str, str]):
        self.port, self.path, self.headers = port, path, headers
        self.status = 0

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Accept: text/event-stream",
                 *(f"{k}: {v}" for k, v in self.headers.items()), "", ""]
        self.writer.write("\r\n".join(lines).encode())
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), 5)
        self.status = int(status_line.split()[1])
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    async def body(self) -> str:
        return (await asyncio.wait_for(self.reader.read(4096), 5)).decode(errors="replace")

    async def event(self, timeout: float = 5.0) -> dict:
        """Next SSE event that has data (comments and retry lines are skipped)."""
        fields: dict[str, str] = {}
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            line = raw.decode().rstrip("\r\n")
            if _is_chunk_size(line):
                continue
            if line == "":
                if "data" in fields:
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value


def _is_chunk_size(line: str) -> bool:
    # daphne uses chunked transfer encoding: skip the hex length lines.
    return bool(line) and all(c in "0123456789abcdefABCDEF" for c in line) and ":" not in line


async def test_it_refuses_anonymous_clients_with_401(shared_daphne, token):
    async with SSEClient(shared_daphne.port, "/api/signals/stream/", {}) as sse:
        assert sse.status == 401


async def test_it_rejects_a_bad_after_id_with_400(shared_daphne, token):
    async with SSEClient(shared_daphne.port, "/api/signals/stream/?after_id=x",
                         {"Authorization": f"Token {token}"}) as sse:
        assert sse.status == 400
        assert "after_id" in await sse.body()


async def test_it_answers_409_resync_to_an_after_id_ahead_of_the_newest_signal(shared_daphne, token):
    newest = await create()
    for header in ({}, {"Last-Event-ID": str(newest + 1000)}):
        async with SSEClient(shared_daphne.port, f"/api/signals/stream/?after_id={newest + 1000}",
                             {"Authorization": f"Token {token}", **header}) as sse:
            assert sse.status == 409
            body = json.loads(await sse.body())
            assert body["type"] == "resync" and body["last_id"] == newest and body["detail"]
    # From the id it was given, the stream works.
    async with SSEClient(shared_daphne.port, f"/api/signals/stream/?after_id={newest}",
                         {"Authorization": f"Token {token}"}) as sse:
        assert sse.status == 200


async def test_it_replays_then_streams_live_with_signal_ids_as_event_ids(shared_daphne, token):
    ids = [await create() for _ in range(3)]
    async with SSEClient(shared_daphne.port, f"/api/signals/stream/?after_id={ids[0]}",
                         {"Authorization": f"Token {token}"}) as sse:
        assert sse.status == 200
        replayed = [await sse.event() for _ in range(2)]
        assert [int(e["id"]) for e in replayed] == ids[1:]
        assert all(e["event"] == "new_signal" for e in replayed)
        assert json.loads(replayed[0]["data"])["signal"]["id"] == ids[1]
        live = await create(symbol="ETHUSDT")
        event = await sse.event()
        assert int(event["id"]) == live and json.loads(event["data"])["signal"]["symbol"] == "ETHUSDT"


async def test_it_resumes_from_last_event_id_over_the_url(shared_daphne, token):
    ids = [await create() for _ in range(4)]
    async with SSEClient(shared_daphne.port, "/api/signals/stream/?after_id=0",
                         {"Authorization": f"Token {token}", "Last-Event-ID": str(ids[2])}) as sse:
        assert int((await sse.event())["id"]) == ids[3]


async def test_it_filters_the_stream(shared_daphne, token):
    async with SSEClient(shared_daphne.port, "/api/signals/stream/?symbol=SOLUSDT",
                         {"Authorization": f"Token {token}"}) as sse:
        await create()
        sol = await create(symbol="SOLUSDT")
        event = await sse.event()
        assert int(event["id"]) == sol


async def test_it_accepts_the_browser_session_cookie(shared_daphne, token, client):
    user = await database_sync_to_async(get_user_model().objects.get)(username="sse")
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    async with SSEClient(shared_daphne.port, "/api/signals/stream/", {"Cookie": cookie}) as sse:
        assert sse.status == 200
        new_id = await create()
        assert int((await sse.event())["id"]) == new_id


async def test_it_replays_and_streams_amendments_with_after_event_id(shared_daphne, token):
    from signals.services import signal_event_create

    user = await database_sync_to_async(get_user_model().objects.get)(username="sse")
    user.is_staff = True
    await database_sync_to_async(user.save)()
    amend = database_sync_to_async(lambda sid, price: signal_event_create(
        signal_id=sid, event_type="move_stop", price=price, created_by=user).id)
    signal_id = await create()
    first = await amend(signal_id, "91")
    second = await amend(signal_id, "92")
    async with SSEClient(shared_daphne.port, f"/api/signals/stream/?after_id={signal_id}&after_event_id={first}",
                         {"Authorization": f"Token {token}"}) as sse:
        replayed = await sse.event()
        assert replayed["event"] == "signal_event" and json.loads(replayed["data"])["event"]["id"] == second
        live = await amend(signal_id, "93")
        event = await sse.event()
        assert event["event"] == "signal_event" and json.loads(event["data"])["event"]["id"] == live
