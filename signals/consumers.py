"""WebSocket door: /ws/signals/?after_id=N&symbol=&market=

Thin: parses the query, authenticates (scope user set by signals.auth), then hands
ordering and gap handling to signals.delivery.SignalCursor.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import weakref
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from . import metrics
from .broadcast import SIGNALS_GROUP
from .delivery import SignalCursor, current_max_id
from .models import Market

logger = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE_BYTES = 4096
MAX_CLIENT_ERRORS = 20
# A doorbell can be lost (Redis restart, over-capacity channel). Once per interval
# each web process reads max(id) once and wakes any local client that is behind,
# so even the last signal before a silence arrives without a reconnect.
WATCHDOG_INTERVAL_SECONDS = float(os.environ.get("WS_WATCHDOG_SECONDS", "5"))

# Application close codes live in 4000-4999 (autobahn, under daphne, refuses to send
# the RFC's 1003/1008/1009 from a server); each mirrors the HTTP/RFC meaning.
CLOSE_BAD_REQUEST = 4400     # bad query string
CLOSE_UNSUPPORTED = 4415     # binary frame (RFC 1003)
CLOSE_TOO_BIG = 4413         # message over the size limit (RFC 1009)
CLOSE_POLICY = 4429          # too many malformed messages (RFC 1008)


class QueryError(ValueError):
    pass


def parse_stream_query(query: dict[str, list[str]]) -> tuple[int | None, dict[str, str]]:
    """Validate after_id/symbol/market from a query string. Returns (after_id or
    None for "live only", filters); raises QueryError with a client-facing reason."""
    after_id = None
    raw = (query.get("after_id") or [None])[-1]
    if raw not in (None, ""):
        if not raw.isdigit():
            raise QueryError("after_id must be a non-negative integer")
        after_id = int(raw)
    filters: dict[str, str] = {}
    symbol = (query.get("symbol") or [""])[-1].strip().upper()
    if symbol:
        if len(symbol) > 32 or not symbol.isalnum():
            raise QueryError("symbol must be 1-32 letters or digits")
        filters["symbol"] = symbol
    market = (query.get("market") or [""])[-1].strip().lower()
    if market:
        if market not in Market.values:
            raise QueryError(f"market must be one of: {', '.join(Market.values)}")
        filters["market"] = market
    return after_id, filters


class _Watchdog:
    """One per event loop (= per web process): a single cheap query per interval."""

    def __init__(self) -> None:
        self.consumers: weakref.WeakSet[SignalConsumer] = weakref.WeakSet()
        self.task: asyncio.Task | None = None
        self.previous_max = 0

    def register(self, consumer: "SignalConsumer") -> None:
        self.consumers.add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.consumers:
            await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
            try:
                latest = await current_max_id()
            except Exception as exc:  # noqa: BLE001 - database hiccup: try next round
                logger.warning("watchdog could not read max id: %r", exc)
                continue
            # Only act on ids that were already visible last round: a doorbell normally
            # arrives within milliseconds, so this avoids racing the live path.
            target = min(latest, self.previous_max)
            self.previous_max = latest
            for consumer in list(self.consumers):
                if consumer.cursor is not None and consumer.cursor.mark < target:
                    asyncio.get_running_loop().create_task(consumer.catch_up(target))


_watchdogs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog]" = weakref.WeakKeyDictionary()


def _watchdog() -> _Watchdog:
    loop = asyncio.get_running_loop()
    if loop not in _watchdogs:
        _watchdogs[loop] = _Watchdog()
    return _watchdogs[loop]


class SignalConsumer(AsyncWebsocketConsumer):
    cursor: SignalCursor | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            metrics.WS_REJECTED.labels(reason="unauthenticated").inc()
            await self.close()  # before accept: the handshake is refused with 403
            return
        try:
            after_id, filters = parse_stream_query(parse_qs(self.scope.get("query_string", b"").decode("latin-1")))
        except QueryError as exc:
            metrics.WS_REJECTED.labels(reason="bad_query").inc()
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST, reason=str(exc))
            return
        self._lock = asyncio.Lock()
        self._errors = 0
        async with self._lock:
            # Subscribe before reading: nothing committed from now on can be missed.
            await self.channel_layer.group_add(SIGNALS_GROUP, self.channel_name)
            self._joined = True
            await self.accept()
            metrics.WS_CONNECTIONS.inc()
            self._counted = True
            if after_id is None:
                after_id = await current_max_id()
            self.cursor = SignalCursor(after_id=after_id, filters=filters, on_fill=metrics.WS_GAP_FILLS.inc)
            await self.cursor.replay(self._send_frame)
        _watchdog().register(self)

    async def disconnect(self, code) -> None:
        if getattr(self, "_joined", False):
            await self.channel_layer.group_discard(SIGNALS_GROUP, self.channel_name)
        if getattr(self, "_counted", False):
            metrics.WS_CONNECTIONS.dec()
            self._counted = False

    async def _send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    # --- channel-layer events ------------------------------------------------------
    async def signal_new(self, event) -> None:
        if self.cursor is None:
            return
        async with self._lock:
            await self.cursor.on_doorbell(event, self._send_frame)

    async def signal_outcome(self, event) -> None:
        if self.cursor is not None and self.cursor.matches(event):
            await self.send(text_data=event["frame"])

    async def health_update(self, event) -> None:
        if self.cursor is not None:
            await self.send(text_data=event["frame"])

    async def catch_up(self, up_to_id: int) -> None:
        if self.cursor is None:
            return
        async with self._lock:
            try:
                await self.cursor.catch_up(up_to_id, self._send_frame)
            except Exception as exc:  # noqa: BLE001 - closed socket or DB hiccup
                logger.debug("catch-up failed: %r", exc)

    # --- client messages -----------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None) -> None:
        if bytes_data is not None:
            await self.close(code=CLOSE_UNSUPPORTED, reason="binary frames are not supported")
            return
        if len(text_data.encode("utf-8")) > MAX_CLIENT_MESSAGE_BYTES:
            metrics.WS_REJECTED.labels(reason="too_big").inc()
            await self.close(code=CLOSE_TOO_BIG, reason=f"message larger than {MAX_CLIENT_MESSAGE_BYTES} bytes")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._client_error("malformed_json", "message is not valid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._client_error("bad_message", 'expected an object like {"type": "ping"}')
            return
        if message["type"] == "ping":
            await self.send(text_data='{"type":"pong"}')
            return
        await self._client_error("unknown_type", f"unknown message type {message['type'][:40]!r}")

    async def _client_error(self, code: str, detail: str) -> None:
        self._errors += 1
        if self._errors > MAX_CLIENT_ERRORS:
            metrics.WS_REJECTED.labels(reason="too_many_errors").inc()
            await self.close(code=CLOSE_POLICY, reason="too many malformed messages")
            return
        await self.send(text_data=json.dumps({"type": "error", "code": code, "detail": detail}))
