"""Races and doorbells of the lifecycle writes: two workers proposing the same
trigger or external id make one signal; an amendment rings the channel layer with
its encoded `signal_event` frame after COMMIT."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from signals.broadcast import SIGNALS_GROUP
from signals.models import Signal
from signals.services import signal_create, signal_event_create

pytestmark = pytest.mark.django_db(transaction=True)
OPENED = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.timezone.utc)


def _racing(create, workers: int = 6) -> list:
    barrier, results = threading.Barrier(workers), []

    def run():
        barrier.wait(30)
        try:
            results.append(create())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.parametrize("key", [
    {"trigger": {"config_id": 3, "timeframe": "1h", "candle_open_time": OPENED}, "source": "rsi_reversal"},
    {"external_id": "alert-77"},
], ids=["trigger", "external_id"])
def test_it_makes_one_signal_when_workers_race_on_the_same_key(instruments, key):
    results = _racing(lambda: signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                                            take_profit="120", confidence=55, **key))
    assert len(results) == 6 and sum(r.created for r in results) == 1
    assert {r.signal.pk for r in results} == {Signal.objects.get().pk}


async def test_it_rings_the_channel_layer_with_the_amendment_frame_after_commit(instruments, staff_user):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(SIGNALS_GROUP, channel)
    try:
        signal = await database_sync_to_async(lambda: signal_create(
            symbol="ETHUSDT", direction="short", entry_price="10", stop_loss="11", take_profit="8",
            confidence=50, created_by=staff_user).signal)()
        event = await database_sync_to_async(lambda: signal_event_create(
            signal_id=signal.pk, event_type="move_stop", price="10.5", reason="tighter", created_by=staff_user))()
        messages = []
        while not any(m["type"] == "signal.event" for m in messages):
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=10))
    finally:
        await layer.group_discard(SIGNALS_GROUP, channel)
    doorbell = next(m for m in messages if m["type"] == "signal.event")
    assert (doorbell["id"], doorbell["signal_id"], doorbell["symbol"], doorbell["market"]) == (
        event.pk, signal.pk, "ETHUSDT", "crypto")
    frame = json.loads(doorbell["frame"])
    assert frame["type"] == "signal_event" and frame["signal_id"] == signal.pk
    assert frame["event"]["id"] == event.pk and frame["event"]["price"] == "10.5"
    assert frame["event"]["created_by"] == "staff" and frame["event"]["reason"] == "tighter"
