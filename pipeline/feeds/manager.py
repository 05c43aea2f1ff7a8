"""The connection manager: one owner for the registry of live connections.

Why an owner task: registrations arrive from many connection tasks, and
subscription changes from the supervisor, at any moment. Rather than guard a dict
with locks (and get the ordering wrong under a reconnect storm), every mutation is
a command on one queue, applied in order by one task. A socket enters the registry
only after its handshake succeeded and leaves it as soon as it is gone, so the
registry never holds a ghost; logical connections (with their state machine,
health and wanted streams) live across reconnects and are reported by `stats()`.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from websockets.asyncio.client import ClientConnection

from pipeline.market_data import Kline, Trade

from .connection import FeedConnection
from .state import ConnectionState, stall_limit, symbol_stream_healthy

logger = logging.getLogger(__name__)

StateHook = Callable[[str, ConnectionState, ConnectionState, str], None]


@dataclass(frozen=True)
class Registration:
    name: str
    ws: ClientConnection
    since: float

    def describe(self) -> dict[str, Any]:
        remote = self.ws.remote_address
        return {"name": self.name, "since": self.since,
                "remote": f"{remote[0]}:{remote[1]}" if remote else None}


class ConnectionManager:
    def __init__(
        self,
        *,
        ws_url: str,
        on_trade: Callable[[Trade], None],
        on_kline: Callable[[Kline], None],
        stale_seconds: float = 15.0,
        stall_min_seconds: float = 2.0,
        stall_factor: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        streams_per_connection: int = 200,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        on_state_change: StateHook | None = None,
        rng: random.Random | None = None,
    ):
        self.ws_url = ws_url
        self.on_trade = on_trade
        self.on_kline = on_kline
        self.stale_seconds = stale_seconds
        self.stall_min_seconds = stall_min_seconds
        self.stall_factor = stall_factor
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.streams_per_connection = streams_per_connection
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.on_state_change = on_state_change
        self.rng = rng or random.Random()
        # Both mutated only by _own().
        self._connections: dict[str, FeedConnection] = {}
        self._registry: dict[str, Registration] = {}
        self._commands: asyncio.Queue = asyncio.Queue()
        self._owner: asyncio.Task | None = None
        self._serial = 0
        self._stopping = False
        self._retiring: set[asyncio.Task] = set()
        self.transitions: Counter = Counter()

    # --- public API (all mutations become commands) -----------------------------------

    async def start(self) -> "ConnectionManager":
        self._owner = asyncio.create_task(self._own(), name="feed-manager")
        return self

    async def stop(self) -> None:
        if self._owner is None:
            return
        await self._command("stop")
        await self._owner
        self._owner = None

    async def subscribe(self, streams: Iterable[str]) -> None:
        await self._command("subscribe", list(streams))

    async def unsubscribe(self, streams: Iterable[str]) -> None:
        await self._command("unsubscribe", list(streams))

    # --- read-only views ---------------------------------------------------------

    def registered(self) -> dict[str, Registration]:
        """Live, handshaken sockets by connection name (a copy)."""
        return dict(self._registry)

    def connections(self) -> list[FeedConnection]:
        return list(self._connections.values())

    def streams(self) -> set[str]:
        return set().union(*(c.wanted for c in self._connections.values())) if self._connections else set()

    async def wait_restored(self, timeout: float) -> bool:
        """Wait until every connection's server-side subscriptions equal its wanted set."""
        try:
            async with asyncio.timeout(timeout):
                for conn in list(self._connections.values()):
                    await conn.restored.wait()
        except TimeoutError:
            return False
        return True

    def symbol_health(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per symbol: connection, state, last message and whether the stream is healthy."""
        now = time.time() if now is None else now
        out: dict[str, dict[str, Any]] = {}
        for conn in self._connections.values():
            for symbol in conn.symbols():
                last = conn.health.symbol_last_message_at.get(symbol)
                gap = conn.health.symbol_gap_ewma.get(symbol)
                out[symbol] = {
                    "connection": conn.name,
                    "state": conn.state.value,
                    "last_message_at": last,
                    "last_market_ms": conn.health.symbol_last_market_ms.get(symbol),
                    "expected_gap_seconds": None if gap is None else round(gap, 4),
                    "stall_limit_seconds": round(self._stall_limit(gap), 3),
                    "healthy": symbol_stream_healthy(state=conn.state.value, symbol_last_message_at=last,
                                                     now=now, stale_seconds=self.stale_seconds, expected_gap=gap,
                                                     min_seconds=self.stall_min_seconds, factor=self.stall_factor),
                }
        return out

    def _stall_limit(self, expected_gap: float | None) -> float:
        return stall_limit(expected_gap=expected_gap, stale_seconds=self.stale_seconds,
                           min_seconds=self.stall_min_seconds, factor=self.stall_factor)

    def recycle(self, name: str, reason: str) -> list[str]:
        """Reconnect the live connection `name` ("all": every one). Returns those cut."""
        cut = [c.name for c in list(self._connections.values())
               if name in ("all", c.name) and c.recycle(reason)]
        for conn_name in cut:
            logger.warning("feed %s: reconnecting on request (%s)", conn_name, reason)
        return cut

    def recycle_stalled(self, now: float | None = None) -> list[tuple[str, str]]:
        """Reconnect every connection whose socket is open while one of its streams
        has been silent past its stall limit. A fresh socket gets that limit to
        prove itself first, so a market-wide silence is retried at that pace rather
        than in a tight loop. Returns [(connection, reason)] of those recycled."""
        now = time.time() if now is None else now
        recycled = []
        for conn in list(self._connections.values()):
            if conn.state is not ConnectionState.CONNECTED:
                continue
            worst = None
            for symbol in sorted(conn.symbols()):
                last = conn.health.symbol_last_message_at.get(symbol)
                gap = conn.health.symbol_gap_ewma.get(symbol)
                limit = self._stall_limit(gap)
                since = max(last or 0.0, conn.health.connected_at or 0.0)
                if last is not None and now - since > limit:
                    worst = worst or (symbol, now - last, gap, limit)
            if worst is None:
                continue
            symbol, silence, gap, limit = worst
            reason = (f"{symbol} silent for {silence:.1f}s, stall limit {limit:.1f}s"
                      + (f" (usually every {gap:.2f}s)" if gap is not None else ""))
            if conn.recycle(reason):
                logger.warning("feed %s: stream stalled (%s); reconnecting", conn.name, reason)
                recycled.append((conn.name, reason))
        return recycled

    def stats(self) -> dict[str, Any]:
        states = Counter({state.value: 0 for state in ConnectionState})
        totals: Counter = Counter()
        now = time.time()
        for conn in self._connections.values():
            states[conn.state.value] += 1
            h = conn.health
            totals.update(messages=h.messages, bytes=h.bytes, trades=h.trades, klines=h.klines,
                          malformed=h.malformed, reconnects=h.reconnects,
                          handshake_failures=h.handshake_failures, stale_events=h.stale_events,
                          stall_recoveries=h.stall_recoveries)
            if conn.state is ConnectionState.CONNECTED and h.is_stale(now, self.stale_seconds):
                totals["stale_now"] += 1
        return {
            "connections": len(self._connections),
            "registered": len(self._registry),
            "states": dict(states),
            "streams": sum(len(c.wanted) for c in self._connections.values()),
            **{k: totals.get(k, 0) for k in ("messages", "bytes", "trades", "klines", "malformed",
                                             "reconnects", "handshake_failures", "stale_events", "stall_recoveries",
                                             "stale_now")},
            "per_connection": [c.snapshot() for c in self._connections.values()],
        }

    # --- used by FeedConnection tasks -----------------------------------------------

    async def _register(self, conn: FeedConnection, ws: ClientConnection) -> bool:
        # Checked here too: the owner may be busy stopping connections and must
        # never wait for a connection that waits for it.
        if self._stopping or self._owner is None or self._owner.done():
            return False
        return await self._command("register", conn, ws)

    def _unregister(self, conn: FeedConnection, ws: ClientConnection) -> None:
        # Fire and forget for the same reason; the owner applies it in order.
        if self._owner is not None and not self._owner.done():
            self._commands.put_nowait(("unregister", (conn, ws), None))

    def _state_changed(self, name: str, old: ConnectionState, new: ConnectionState, reason: str) -> None:
        self.transitions[(old.value, new.value)] += 1
        level = logging.WARNING if new is ConnectionState.ERROR else logging.INFO
        logger.log(level, "feed %s: %s -> %s%s", name, old.value, new.value, f" ({reason})" if reason else "")
        if self.on_state_change:
            self.on_state_change(name, old, new, reason)

    # --- the owner ------------------------------------------------------------------

    async def _command(self, kind: str, *args: Any) -> Any:
        if self._owner is None or self._owner.done():
            raise RuntimeError("connection manager is not running")
        done = asyncio.get_running_loop().create_future()
        await self._commands.put((kind, args, done))
        return await done

    async def _own(self) -> None:
        while True:
            kind, args, done = await self._commands.get()
            try:
                result = await self._apply(kind, *args)
            except Exception as exc:  # noqa: BLE001 - report to the caller, keep owning
                if done is not None and not done.done():
                    done.set_exception(exc)
                continue
            if done is not None and not done.done():
                done.set_result(result)
            if kind == "stop":
                return

    async def _apply(self, kind: str, *args: Any) -> Any:
        if kind == "register":
            conn, ws = args
            if self._stopping or self._connections.get(conn.name) is not conn:
                return False
            self._registry[conn.name] = Registration(conn.name, ws, time.time())
            return True
        if kind == "unregister":
            conn, ws = args
            current = self._registry.get(conn.name)
            if current is not None and current.ws is ws:
                del self._registry[conn.name]
            return None
        if kind == "subscribe":
            self._subscribe(args[0])
            return None
        if kind == "unsubscribe":
            await self._unsubscribe(args[0])
            return None
        if kind == "stop":
            self._stopping = True
            conns = list(self._connections.values())
            for conn in conns:
                conn.request_stop()
            # Safe to wait here: connections never wait for the owner once
            # _stopping is set (see _register/_unregister).
            await asyncio.gather(*(c.wait_stopped() for c in conns), *self._retiring)
            while not self._commands.empty():
                pending_kind, pending_args, pending = self._commands.get_nowait()
                if pending_kind == "unregister":
                    await self._apply(pending_kind, *pending_args)
                elif pending is not None and not pending.done():
                    pending.set_result(None)
            self._connections.clear()
            self._registry.clear()
            return None
        raise ValueError(f"unknown command {kind!r}")

    def _subscribe(self, streams: list[str]) -> None:
        have = self.streams()
        by_symbol: dict[str, set[str]] = {}
        for stream in streams:
            if stream not in have:
                by_symbol.setdefault(stream.split("@", 1)[0], set()).add(stream)
        for symbol, group in sorted(by_symbol.items()):
            # Keep a symbol's streams together so its health is one connection's health.
            target = next((c for c in self._connections.values() if symbol.upper() in c.symbols()), None)
            if target is None:
                target = next((c for c in self._connections.values()
                               if len(c.wanted) + len(group) <= self.streams_per_connection), None)
            if target is None:
                self._serial += 1
                target = FeedConnection(
                    f"conn-{self._serial}", register=self._register, unregister=self._unregister,
                    on_state_change=self._state_changed, ws_url=self.ws_url,
                    on_trade=self.on_trade, on_kline=self.on_kline,
                    stale_seconds=self.stale_seconds, backoff_base=self.backoff_base,
                    backoff_cap=self.backoff_cap, open_timeout=self.open_timeout,
                    ping_interval=self.ping_interval, rng=self.rng,
                )
                self._connections[target.name] = target
                target.want(add=group)
                target.start()
            else:
                target.want(add=group)

    async def _unsubscribe(self, streams: list[str]) -> None:  # noqa: RUF029
        drop = set(streams)
        for conn in list(self._connections.values()):
            if conn.wanted & drop:
                conn.want(remove=conn.wanted & drop)
                if not conn.wanted:
                    # Nothing left to stream: close it rather than hold an idle socket.
                    # Not awaited here (the owner must stay free to process the
                    # connection's own unregister command).
                    del self._connections[conn.name]
                    conn.request_stop()
                    task = asyncio.create_task(conn.wait_stopped())
                    self._retiring.add(task)
                    task.add_done_callback(self._retiring.discard)
