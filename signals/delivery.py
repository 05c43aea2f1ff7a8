"""Gap-free, duplicate-free delivery for one client (shared by WebSocket and SSE).

The rule: the database is the truth, the channel layer only the doorbell. A cursor
remembers the highest signal id it has *accounted for* (sent, or skipped by the
client's filters). Ids are visible in commit order (signal_create serializes
inserts), so:
  - a doorbell with id <= high-water mark is a duplicate: dropped;
  - a doorbell with id == mark + 1 is the next one: its pre-encoded frame is sent;
  - a doorbell with id > mark + 1 means doorbells were lost (or ids skipped): the
    missing range is read from the database, in id order, before moving on.
Replay and live hand-over use the same mark: the caller subscribes to the group
*before* replaying, so anything committed during replay is either in the replay or
arrives later as a doorbell and is dropped as a duplicate.

Amendments (`signal_event` frames) are not serialized like signals (two signals'
amendments may commit out of id order), so no mark can stand for them: a client that
passes `after_event_id` gets every amendment with a greater id, for signals its
filters accept, replayed in id order after the signal replay, and the ids it was
replayed are remembered so their doorbells (subscribed before the replay) are
dropped instead of sent twice. Without `after_event_id`, amendments are live only.
"""
from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from channels.db import database_sync_to_async
from django.db import close_old_connections

from .selectors import event_payload, events_after, signal_after, signal_max_id, signal_payload

REPLAY_BATCH = 500

def db_read(func: Callable) -> Callable:
    """Run `func` (a read) on a worker thread, off Django's single sync thread
    (thread_sensitive=False): a reconnect storm's handshakes and replays then query
    in parallel instead of queueing behind one another.

    The connection is handed back around the call itself, inside the context the
    call runs in. channels' own close_old_connections() runs outside that context,
    and with asgiref 3.13 it left open the connection a thread-insensitive call had
    opened: with the database pool, each event loop's worker threads kept a pooled
    connection for good, until the pool ran dry (signals/tests/test_db_read.py).
    """

    @functools.wraps(func)
    def closing(*args, **kwargs):
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return database_sync_to_async(closing, thread_sensitive=False)


def new_signal_frame(signal) -> str:
    return json.dumps({"type": "new_signal", "signal": signal_payload(signal)}, separators=(",", ":"))


@db_read
def _fetch(after_id: int, up_to_id: int | None, filters: dict[str, str], limit: int) -> list[tuple[int, str]]:
    rows = signal_after(after_id=after_id, up_to_id=up_to_id, filters=filters, limit=limit)
    return [(s.id, new_signal_frame(s)) for s in rows]


def signal_event_frame(event) -> str:
    return json.dumps({"type": "signal_event", "signal_id": event.signal_id, "event": event_payload(event)},
                      separators=(",", ":"))


@db_read
def _fetch_events(after_event_id: int, filters: dict[str, str], limit: int) -> tuple[int, list[tuple[int, str]]]:
    """Amendments with id > after_event_id, in id order: (highest id scanned, the
    (id, frame) pairs of those whose signal passes `filters`)."""
    rows = list(events_after(after_event_id=after_event_id, limit=limit))
    symbol, market = filters.get("symbol"), filters.get("market")
    frames = [(e.id, signal_event_frame(e)) for e in rows
              if (not symbol or e.signal.symbol == symbol) and (not market or e.signal.market == market)]
    return (rows[-1].id if rows else after_event_id), frames


@db_read
def _max_id() -> int:
    return signal_max_id()


class _SharedReads:
    """Identical reads share one query: in a reconnect storm thousands of clients
    resume from the same last id at once, and each replay costs milliseconds of
    serialization (measured ~9 ms for one signal with its outcome and events).

    A range of ids (after_id, up_to_id] never changes membership once visible (ids
    are visible in commit order and signals are permanent), so a finished replay read
    is reused for REUSE_SECONDS; its frames may then show an outcome a moment old,
    which the live `outcome` frame corrects. The max-id read is only shared while in
    flight (never reused), so "the newest id" is never older than the caller's
    subscription by more than one query.
    """

    REUSE_SECONDS = 2.0
    _MAX_ENTRIES = 512

    def __init__(self) -> None:
        self._ranges: dict[tuple, tuple[float, asyncio.Task]] = {}
        self._max: asyncio.Task | None = None

    async def fetch(self, after_id: int, up_to_id: int | None, filters: dict[str, str], limit: int):
        loop = asyncio.get_running_loop()
        key = (after_id, up_to_id, tuple(sorted(filters.items())), limit)
        now = loop.time()
        entry = self._ranges.get(key)
        if entry is None or entry[0] < now or entry[1].get_loop() is not loop or up_to_id is None:
            if len(self._ranges) >= self._MAX_ENTRIES:
                self._ranges = {k: v for k, v in self._ranges.items() if v[0] >= now}
            task = loop.create_task(_fetch(after_id, up_to_id, filters, limit))
            task.add_done_callback(lambda done: self._forget_failed(key, done))
            entry = self._ranges[key] = (now + self.REUSE_SECONDS, task)
        return await asyncio.shield(entry[1])

    def _forget_failed(self, key: tuple, task: asyncio.Task) -> None:
        if (task.cancelled() or task.exception() is not None) and self._ranges.get(key, (0, None))[1] is task:
            del self._ranges[key]

    async def max_id(self) -> int:
        loop = asyncio.get_running_loop()
        task = self._max
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._max = loop.create_task(_max_id())
        return await asyncio.shield(task)


_shared = _SharedReads()


@dataclass(slots=True)
class SignalCursor:
    after_id: int
    filters: dict[str, str] = field(default_factory=dict)
    on_fill: Callable[[], None] | None = None
    after_event_id: int | None = None  # None: amendments live only

    mark: int = field(init=False)
    sent: int = field(init=False, default=0)
    replayed_events: set[int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.mark = self.after_id

    def matches(self, event: dict[str, Any]) -> bool:
        symbol = self.filters.get("symbol")
        market = self.filters.get("market")
        return (not symbol or event.get("symbol") == symbol) and (not market or event.get("market") == market)

    async def _send_range(self, up_to_id: int, send) -> int:
        """Send stored signals with mark < id <= up_to_id in id order, in batches so a
        long absence never loads everything at once. Returns frames sent."""
        count = 0
        while self.mark < up_to_id:
            rows = await _shared.fetch(self.mark, up_to_id, self.filters, REPLAY_BATCH)
            for signal_id, frame in rows:
                await send(frame)
                self.mark = signal_id
                count += 1
            if len(rows) < REPLAY_BATCH:
                break
        self.mark = max(self.mark, up_to_id)
        self.sent += count
        return count

    async def replay(self, send, *, up_to_id: int | None = None) -> int:
        """Send every stored signal with id > after_id, up to `up_to_id` (default:
        the current maximum), then the amendments the client asked for."""
        count = await self._send_range(await current_max_id() if up_to_id is None else up_to_id, send)
        if self.after_event_id is not None:
            count += await self._replay_events(send)
        return count

    async def _replay_events(self, send) -> int:
        """Every amendment with id > after_event_id passing the filters, in id order."""
        replayed = self.replayed_events = set()
        scanned = self.after_event_id
        while True:
            last, rows = await _fetch_events(scanned, self.filters, REPLAY_BATCH)
            for event_id, frame in rows:
                await send(frame)
                replayed.add(event_id)
            if last == scanned:
                return len(replayed)
            scanned = last

    def event_frame(self, event: dict[str, Any]) -> str | None:
        """The frame of a live `signal.event` doorbell for this client, or None
        (filtered out, or already sent by the replay)."""
        replayed = self.replayed_events
        if replayed and event.get("id") in replayed:
            replayed.discard(event["id"])  # each doorbell comes once: forget it now
            return None
        return event["frame"] if self.matches(event) else None

    def advance(self, event: dict[str, Any]) -> tuple[bool, str | None]:
        """The in-order step for a `signal.new` doorbell, without I/O.

        Returns (True, frame or None) when the doorbell is a duplicate or the next id
        (frame None when filtered out), or (False, None) when ids jumped and the gap
        must be read from the database first (see on_doorbell)."""
        signal_id = int(event["id"])
        if signal_id <= self.mark:
            return True, None
        if signal_id != self.mark + 1:
            return False, None
        self.mark = signal_id
        if not self.matches(event):
            return True, None
        self.sent += 1
        return True, event["frame"]

    def rewind(self, signal_id: int) -> None:
        """Undo `advance` for `signal_id` whose frame could not be written."""
        if self.mark == signal_id:
            self.mark = signal_id - 1
            self.sent -= 1

    def passthrough(self, event: dict[str, Any]) -> str | None:
        """The frame of an outcome or health event for this client, if any: they are
        not part of the id sequence, so they are forwarded as they come."""
        kind = event.get("type")
        if kind == "signal.outcome":
            return event["frame"] if self.matches(event) else None
        if kind == "signal.event":
            return self.event_frame(event)
        if kind in ("health.update", "status.update"):
            return event["frame"]
        return None

    async def on_doorbell(self, event: dict[str, Any], send) -> int:
        """Handle a `signal.new` doorbell: send what it implies, in order. Returns
        the number of frames sent (0 for a duplicate or a filtered-out signal)."""
        handled, frame = self.advance(event)
        if handled:
            if frame is None:
                return 0
            try:
                await send(frame)
            except BaseException:
                self.rewind(int(event["id"]))
                raise
            return 1
        # Doorbells were lost (or ids skipped by a rolled-back insert): read the gap.
        if self.on_fill is not None:
            self.on_fill()
        return await self._send_range(int(event["id"]), send)

    async def handle(self, event: dict[str, Any], send) -> None:
        """Any hub event, in order: doorbells, watchdog catch-ups, outcomes, health."""
        kind = event.get("type")
        if kind == "signal.new":
            await self.on_doorbell(event, send)
        elif kind == "catch_up":
            await self.catch_up(int(event["id"]), send)
        else:
            frame = self.passthrough(event)
            if frame is not None:
                await send(frame)

    async def catch_up(self, up_to_id: int, send) -> int:
        """Send anything committed up to `up_to_id` that no doorbell announced."""
        if up_to_id <= self.mark:
            return 0
        if self.on_fill is not None:
            self.on_fill()
        return await self._send_range(up_to_id, send)


async def current_max_id() -> int:
    """The newest committed signal id (concurrent callers share one query)."""
    return await _shared.max_id()
