"""Client outages: a client away for seconds or across tens of thousands of signals
gets every one it missed from the database (there is no history window), in order,
once, then live; a client that claims an id ahead of the server is told to resync."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from channels.db import database_sync_to_async

from faults.conftest import SIGNAL_BODY, scaled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]


def _create_many(count: int) -> list[int]:
    from signals.services import signal_create

    return [signal_create(**SIGNAL_BODY, source="away").signal.id for _ in range(count)]


async def test_it_replays_tens_of_thousands_of_missed_signals_in_order(shared_daphne, staff_api_token):
    headers = {"Authorization": f"Token {staff_api_token}"}
    url = f"{shared_daphne.ws_url}/ws/signals/"
    first = await database_sync_to_async(_create_many)(1)
    # Away: the client held `first` and came back after `count` more were published.
    count = scaled(20000, minimum=2000)
    missed = await database_sync_to_async(_create_many)(count)
    started = time.monotonic()
    async with websockets.connect(f"{url}?after_id={first[0]}", additional_headers=headers, max_queue=None,
                                  max_size=None) as ws:
        got = []
        while len(got) < count:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame["type"] == "new_signal":
                got.append(frame["signal"]["id"])
        elapsed = time.monotonic() - started
        assert got == missed
        live = await database_sync_to_async(_create_many)(1)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["signal"]["id"] == live[0]
    print(f"\nRELIABILITY client-away: {count} missed signals replayed in {elapsed:.1f} s")


async def test_it_tells_a_client_ahead_of_the_server_to_resync(shared_daphne, staff_api_token):
    headers = {"Authorization": f"Token {staff_api_token}"}
    latest = (await database_sync_to_async(_create_many)(1))[0]
    async with websockets.connect(f"{shared_daphne.ws_url}/ws/signals/?after_id={latest + 1000}",
                                  additional_headers=headers) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "resync", "last_id": latest}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd.code == 4409
