"""One logical stream connection: a set of wanted streams kept alive across any
number of physical WebSocket connections.

The task in `FeedConnection.run` is the only code that touches its socket and its
state machine: connect (handshake first), ask the manager to register the socket,
restore every wanted subscription, read until the socket dies or goes stale, ask
the manager to unregister it, back off with full jitter, and start again. Frames
that do not parse are counted and skipped; nothing a remote peer sends can end the
loop except by closing the socket.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from pipeline.market_data import Kline, Trade

from .protocol import KlineEvent, MalformedMessage, Reply, TradeEvent, message_parse, request_frame
from .state import ConnectionHealth, ConnectionState, ConnectionStateMachine, backoff_delay

# What a connection needs from its owner, passed in as plain callables so the
# connection never reaches into the manager: ask to register a handshaken socket
# (False: stopped meanwhile), report it gone, report a state change.
RegisterHook = Callable[["FeedConnection", ClientConnection], Awaitable[bool]]
UnregisterHook = Callable[["FeedConnection", ClientConnection], None]
StateHook = Callable[[str, ConnectionState, ConnectionState, str], None]

logger = logging.getLogger(__name__)

# Streams named in the connection URL (the rest go out as SUBSCRIBE frames). Keeps
# URLs short; the exchange accepts up to 1,024 streams per connection either way.
URL_STREAMS = 50
SUBSCRIBE_CHUNK = 100
# The exchange disconnects a client sending more than 5 frames a second; stay under.
MAX_FRAMES_PER_SECOND = 4


class _StaleStream(Exception):
    pass


class _TrackedClientConnection(ClientConnection):
    """Records when the server last pinged us (websockets answers pings itself)."""

    last_ping_at: float | None = None

    def process_event(self, event: Any) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.last_ping_at = time.time()
        super().process_event(event)


def url_is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FeedConnection:
    """See module docstring. Created and owned by ConnectionManager."""

    def __init__(
        self,
        name: str,
        *,
        register: RegisterHook,
        unregister: UnregisterHook,
        on_state_change: StateHook,
        ws_url: str,
        on_trade: Callable[[Trade], None],
        on_kline: Callable[[Kline], None],
        stale_seconds: float,
        backoff_base: float,
        backoff_cap: float,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        rng: random.Random | None = None,
    ):
        self.name = name
        self._register = register
        self._unregister = unregister
        self.ws_url = ws_url.rstrip("/")
        self.on_trade = on_trade
        self.on_kline = on_kline
        self.stale_seconds = stale_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.rng = rng or random.Random()
        self.state_machine = ConnectionStateMachine(name, on_change=on_state_change)
        self.health = ConnectionHealth()
        self.wanted: set[str] = set()
        self.confirmed: set[str] = set()
        # Set when the live socket's subscriptions (per LIST_SUBSCRIPTIONS) equal wanted.
        self.restored = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, list[str] | None]] = asyncio.Queue()
        self._pending: dict[int, tuple[str, list[str] | None]] = {}
        self._next_id = 1
        self._ws: ClientConnection | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._malformed_logged = 0
        self._recycle_reason = ""

    # --- called by the manager (the owner) ------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"feed-{self.name}")

    def want(self, add: set[str] = frozenset(), remove: set[str] = frozenset()) -> None:
        """Change the wanted streams; a live socket is told at once, a dead one on reconnect."""
        self.wanted |= add
        self.wanted -= remove
        if self._ws is not None and self.state_machine.state is ConnectionState.CONNECTED:
            if add - self.confirmed:
                self._queue("SUBSCRIBE", sorted(add - self.confirmed))
            if remove & self.confirmed:
                self._queue("UNSUBSCRIBE", sorted(remove & self.confirmed))
            self.restored.clear()
            self._queue("LIST_SUBSCRIPTIONS", None)

    def request_stop(self) -> None:
        """Ask the task to finish: a live socket gets a clean close, a backoff wait ends."""
        self._stop.set()
        if self._ws is not None:
            # A clean close lets the read loop end through the normal path.
            asyncio.ensure_future(self._ws.close(1000, "client shutdown"))

    def recycle(self, reason: str) -> bool:
        """Cut the live socket so the task reconnects it (a stalled stream: the socket
        is open but the data stopped). Returns False when there is no live socket."""
        if self._ws is None or self.state_machine.state is not ConnectionState.CONNECTED or self._ws.transport is None:
            return False
        self._recycle_reason = reason
        self.health.stall_recoveries += 1
        self._ws.transport.abort()
        return True

    async def wait_stopped(self, timeout: float = 5.0) -> None:
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def state(self) -> ConnectionState:
        return self.state_machine.state

    def symbols(self) -> set[str]:
        return {name.split("@", 1)[0].upper() for name in self.wanted}

    # --- the connection's own task ------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        ever_connected = False
        while not self._stop.is_set():
            self.state_machine.move(ConnectionState.CONNECTING, "opening handshake")
            ws = await self._until_stopped(self._handshake())
            if ws is None:
                if self._stop.is_set():
                    self.state_machine.move(ConnectionState.DISCONNECTED, "stopped while connecting")
                    return
                # Handshake failed: nothing was registered (see _handshake).
                attempt += 1
                await self._back_off(attempt)
                continue
            if not await self._register(self, ws):
                # Stopped (or removed) while the handshake was in flight.
                await ws.close(1000, "client shutdown")
                self.state_machine.move(ConnectionState.DISCONNECTED, "stopped before registration")
                return
            self._ws = ws
            now = time.time()
            self.health.connected_at = now
            if ever_connected:
                self.health.reconnects += 1
            ever_connected = True
            self.state_machine.move(ConnectionState.CONNECTED, "handshake complete")
            got_data = False
            try:
                got_data = await self._session(ws)
                reason = f"closed by server: {ws.close_code} {ws.close_reason}".strip()
            except _StaleStream:
                self.health.stale_events += 1
                reason = f"stale: no message for {self.stale_seconds:g}s"
            except ConnectionClosed as exc:
                reason = f"connection lost: {exc}"
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                logger.exception("feed %s: unexpected error", self.name)
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                if self._recycle_reason:
                    reason, self._recycle_reason = f"recycled: {self._recycle_reason}", ""
                self._ws = None
                self.confirmed.clear()
                self.restored.clear()
                self._pending.clear()
                self._unregister(self, ws)
            if self._stop.is_set():
                self.state_machine.move(ConnectionState.DISCONNECTING, "shutdown")
                await ws.close(1000, "client shutdown")
                self.state_machine.move(ConnectionState.DISCONNECTED, "shutdown")
                return
            if ws.transport is not None:
                ws.transport.abort()  # a stale socket may still be open: cut it
            self.health.last_error = reason
            self.state_machine.move(ConnectionState.ERROR, reason)
            attempt = 0 if got_data else attempt + 1
            await self._back_off(attempt)
        if self.state_machine.state is not ConnectionState.DISCONNECTED:
            self.state_machine.move(ConnectionState.DISCONNECTED, "stopped")

    async def _back_off(self, attempt: int) -> None:
        delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng)
        self.state_machine.move(ConnectionState.RECONNECTING, f"retry in {delay:.2f}s (attempt {attempt})")
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
        except asyncio.TimeoutError:
            pass
        if self._stop.is_set():
            self.state_machine.move(ConnectionState.DISCONNECTED, "stopped while waiting to reconnect")

    async def _until_stopped(self, coro):
        """Run coro unless stop() is called first (then cancel it and return None)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        try:
            ws = await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            return None
        if ws is not None:
            await ws.close()
        return None

    def _url(self) -> str:
        streams = sorted(self.wanted)[:URL_STREAMS]
        if not streams:
            return f"{self.ws_url}/stream"
        return f"{self.ws_url}/stream?streams={'/'.join(streams)}"

    async def _handshake(self) -> ClientConnection | None:
        url = self._url()
        try:
            ws = await connect(
                url,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                close_timeout=2,
                max_queue=256,
                compression=None,
                # A proxy from the environment must never sit between us and a
                # loopback simulator.
                proxy=None if url_is_loopback(url) else True,
                create_connection=_TrackedClientConnection,
            )
        except Exception as exc:  # noqa: BLE001 - refused, timed out, bad status, DNS...
            self.health.handshake_failures += 1
            self.health.last_error = f"handshake failed: {type(exc).__name__}: {exc}"[:300]
            self.state_machine.move(ConnectionState.ERROR, self.health.last_error)
            return None
        # Streams in the URL are live as soon as the handshake succeeds.
        self.confirmed = set(sorted(self.wanted)[:URL_STREAMS])
        return ws

    async def _session(self, ws: ClientConnection) -> bool:
        """Restore subscriptions, then read until the socket closes. Returns whether
        any data arrived (which resets the backoff)."""
        rest = sorted(self.wanted - self.confirmed)
        for i in range(0, len(rest), SUBSCRIBE_CHUNK):
            self._queue("SUBSCRIBE", rest[i:i + SUBSCRIBE_CHUNK])
        # Ask the server what we are subscribed to: restoration is proven, not assumed.
        self._queue("LIST_SUBSCRIPTIONS", None)
        sender = asyncio.create_task(self._send_loop(ws), name=f"feed-{self.name}-send")
        got_data = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stale_seconds):
                        raw = await ws.recv()
                except TimeoutError:
                    raise _StaleStream from None
                now = time.time()
                self.health.record_message(len(raw), now)
                self.health.last_ping_at = getattr(ws, "last_ping_at", None) or self.health.last_ping_at
                if ws.latency:
                    self.health.latency_ms = round(ws.latency * 1000, 2)
                if self._handle(raw, now):
                    got_data = True
        except ConnectionClosed:
            if ws.close_code == 1000 and self._stop.is_set():
                return got_data
            raise
        finally:
            sender.cancel()
            # Drop frames queued for this socket; the next session re-derives them.
            while not self._outbox.empty():
                self._outbox.get_nowait()

    def _handle(self, raw: str | bytes, now: float) -> bool:
        try:
            event = message_parse(raw)
        except MalformedMessage as exc:
            self.health.malformed += 1
            # Log the first few and then every 100th, so a flood of garbage is
            # visible without drowning the log.
            if self._malformed_logged < 5 or self.health.malformed % 100 == 0:
                logger.warning("feed %s: skipped malformed frame #%d: %s",
                               self.name, self.health.malformed, exc)
            self._malformed_logged += 1
            return False
        if isinstance(event, TradeEvent):
            trade = event.trade
            self.health.trades += 1
            self.health.record_symbol_message(trade.symbol, now)
            if trade.ts_ms > self.health.symbol_last_market_ms.get(trade.symbol, 0):
                self.health.symbol_last_market_ms[trade.symbol] = trade.ts_ms
            self.on_trade(trade)
            return True
        if isinstance(event, KlineEvent):
            kline = event.kline
            self.health.klines += 1
            self.health.record_symbol_message(kline.symbol, now)
            if kline.open_ms > self.health.symbol_last_market_ms.get(kline.symbol, 0):
                self.health.symbol_last_market_ms[kline.symbol] = kline.open_ms
            self.on_kline(kline)
            return True
        self._on_reply(event)
        return False

    def _on_reply(self, reply: Reply) -> None:
        request = self._pending.pop(reply.id, None) if isinstance(reply.id, int) else None
        if request is None:
            return
        method, params = request
        if reply.error:
            self.health.last_error = f"{method} refused: {reply.error.get('msg', reply.error)}"[:300]
            logger.warning("feed %s: %s", self.name, self.health.last_error)
            return
        if method == "SUBSCRIBE":
            self.confirmed.update(params or [])
        elif method == "UNSUBSCRIBE":
            self.confirmed.difference_update(params or [])
        elif method == "LIST_SUBSCRIPTIONS" and isinstance(reply.result, list):
            self.confirmed = {s for s in reply.result if isinstance(s, str)}
            missing, extra = self.wanted - self.confirmed, self.confirmed - self.wanted
            if missing:
                logger.warning("feed %s: server lost %d subscriptions; resubscribing", self.name, len(missing))
                self._queue("SUBSCRIBE", sorted(missing))
            if extra:
                self._queue("UNSUBSCRIBE", sorted(extra))
            if missing or extra:
                self._queue("LIST_SUBSCRIPTIONS", None)
            else:
                self.restored.set()

    def _queue(self, method: str, params: list[str] | None) -> None:
        self._outbox.put_nowait((method, params))

    async def _send_loop(self, ws: ClientConnection) -> None:
        sent: list[float] = []
        while True:
            method, params = await self._outbox.get()
            now = time.monotonic()
            sent = [t for t in sent if t > now - 1.0]
            if len(sent) >= MAX_FRAMES_PER_SECOND:
                await asyncio.sleep(sent[0] + 1.0 - now)
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = (method, params)
            await ws.send(request_frame(method, params, request_id))
            sent.append(time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state_machine.state.value,
            "reason": self.state_machine.reason,
            "state_since": self.state_machine.changed_at,
            "streams": sorted(self.wanted),
            "confirmed": sorted(self.confirmed),
            "health": self.health.as_dict(),
        }
