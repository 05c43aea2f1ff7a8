"""Per-process fan-out hub: one channel-layer subscription per web process.

Why: the straightforward design (every WebSocket consumer joins the Redis group and
receives each doorbell on its own channel) pays, per client and per signal, a
Redis-side delivery, a msgpack decode, a queue hand-off, a task wake-up and a
dispatch. bench/fanout.py measured that as the dominant cost at 2,000 clients.
Here each process receives a doorbell once and offers it to its local consumers
synchronously; a consumer in steady state answers with the pre-encoded frame (or
nothing) and the hub writes it. Consumers that are replaying, filling a gap or
catching up take the doorbell into their own ordered backlog instead.

It also runs the watchdog: once per interval a single `max(id)` query per process
wakes any local client that is behind, so a lost last doorbell (Redis restart,
dropped message) is still delivered without a reconnect.

State here is only "who is connected to this process"; history stays in the DB.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from .broadcast import SIGNALS_GROUP
from .delivery import current_max_id
from .metrics import FANOUT_FRAMES, FANOUT_SECONDS, FANOUT_WRITE_FAILURES
from .prepared_frames import PreparedFrames

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL_SECONDS = settings.WS_WATCHDOG_SECONDS
_RECEIVE_RETRY_SECONDS = 1.0


class HubClient(Protocol):
    def offer(self, event: dict[str, Any]) -> str | None: ...
    def fast_protocol(self): ...
    def lagging_behind(self, max_id: int) -> bool: ...
    def request_catch_up(self, up_to_id: int) -> None: ...
    def write_failed(self, event: dict[str, Any], exc: Exception) -> None: ...
    async def send_text(self, frame: str) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.clients: "weakref.WeakSet[HubClient]" = weakref.WeakSet()
        self._receiver: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._channel: str | None = None
        self._previous_max = 0
        self._database_available = True
        self._start_lock = asyncio.Lock()

    async def register(self, client: HubClient) -> None:
        """Start receiving doorbells for `client` (subscribed before this returns)."""
        await self._ensure_running()
        self.clients.add(client)

    def unregister(self, client: HubClient) -> None:
        self.clients.discard(client)

    async def _ensure_running(self) -> None:
        # A reconnect storm calls this from many handshakes at once: subscribe once.
        async with self._start_lock:
            if self._channel is None:
                layer = get_channel_layer()
                channel = await layer.new_channel(prefix="hub.")
                await layer.group_add(SIGNALS_GROUP, channel)
                self._channel = channel
        loop = asyncio.get_running_loop()
        if self._receiver is None or self._receiver.done():
            self._receiver = loop.create_task(self._receive_forever())
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch_forever())

    async def _receive_forever(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                event = await layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: the watchdog covers us
                logger.warning("hub receive failed, retrying: %r", exc)
                await asyncio.sleep(_RECEIVE_RETRY_SECONDS)
                continue
            await self.fan_out(event)

    async def fan_out(self, event: dict[str, Any]) -> int:
        """Offer one doorbell to every local client; returns frames written."""
        started = time.perf_counter()
        sent = prepared_sent = 0
        prepared: PreparedFrames | None = None
        for client in list(self.clients):
            try:
                frame = client.offer(event)
                if frame is None:
                    continue
                protocol = client.fast_protocol()
                if protocol is not None:
                    # Every client of this round gets the same frame: framed once.
                    prepared = prepared or PreparedFrames(frame, limit=settings.WS_MAX_BUFFER_BYTES)
                    prepared.send(protocol)
                    prepared_sent += 1
                else:
                    await client.send_text(frame)
                sent += 1
            except Exception as exc:  # noqa: BLE001 - one broken socket must not stop the rest
                # Never skip silently: the client is closed and resumes from the last
                # id it really received (its cursor is rewound before this frame).
                FANOUT_WRITE_FAILURES.inc()
                logger.warning("fan-out write failed, closing that client so it resumes: %r", exc)
                client.write_failed(event, exc)
        if prepared_sent:
            FANOUT_FRAMES.labels(path="prepared").inc(prepared_sent)
        if sent > prepared_sent:
            FANOUT_FRAMES.labels(path="asgi").inc(sent - prepared_sent)
        FANOUT_SECONDS.observe(time.perf_counter() - started)
        return sent

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
            if not self.clients:
                continue
            try:
                latest = await current_max_id()
            except Exception as exc:  # noqa: BLE001 - database outage: say so, retry next round
                logger.warning("watchdog could not read max id: %r", exc)
                await self._database_status(available=False)
                continue
            await self._database_status(available=True)
            # Only ids already visible last round: a doorbell normally arrives within
            # milliseconds, so this never races the live path into needless reads.
            target = min(latest, self._previous_max)
            self._previous_max = latest
            for client in list(self.clients):
                if client.lagging_behind(target):
                    client.request_catch_up(target)

    async def _database_status(self, *, available: bool) -> None:
        """Tell this process's clients when the database goes away and comes back:
        their socket stays open, but nothing new can be published meanwhile."""
        if available == self._database_available:
            return
        self._database_available = available
        frame = json.dumps({"type": "status", "database": "ok" if available else "unavailable"},
                           separators=(",", ":"))
        await self.fan_out({"type": "status.update", "frame": frame})


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def local_hub() -> Hub:
    """The hub of the running event loop (one per web process in production)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
