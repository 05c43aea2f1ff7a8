"""The feed process (`manage.py run_feed`): streams in, candles out, state visible.

One asyncio loop runs four things side by side:
- the ConnectionManager (sockets, reconnects, subscriptions);
- a batcher that hands trades and closed klines to pipeline.services every
  `batch_interval` seconds or `batch_size` trades, on ONE database thread so
  writes stay in arrival order;
- a supervisor that follows market sessions and readiness: a market whose session
  opens is subscribed and backfilled, then checked (WAITING_DATA -> CHECKING_DATA ->
  READY -> ACTIVE); a market whose session closes is unsubscribed (STOPPED);
- a publisher that writes stream health to Redis every second for the fallback
  task, `pipeline_status` and /health, and first reconnects any stream stalled by
  its own learned rate (ConnectionManager.recycle_stalled).
A reconnect triggers a REST backfill from the last message before the drop, so
the candle series has no hole where the socket was down.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from django.conf import settings
from django.db import close_old_connections, connections

from pipeline.outcomes.tracker import OutcomeTracker
from pipeline.candle_close_watch import CandleCloseWatch
from pipeline.aggregation import MINUTE_MS
from pipeline.models import ReadinessState
from pipeline.selectors import feed_instruments, readiness_check
from pipeline.sessions import market_is_open, market_session
from pipeline.services import TradeDedupe, candles_backfill, klines_ingest, readiness_move, trades_ingest
from pipeline.market_data import Kline, Trade

from .health_store import feed_commands_take, feed_health_clear, feed_health_publish
from .manager import ConnectionManager
from .protocol import streams_for_symbol
from .rest import BinanceRestClient
from .state import ConnectionState

logger = logging.getLogger(__name__)

# Trades kept for retry while the database is unreachable; beyond this the oldest are
# dropped and the gap backfill repairs the candles from REST later.
MAX_PENDING_TRADES = 500_000


def _db_call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # Long-lived threads must drop connections the server closed (DB restart).
    close_old_connections()
    return func(*args, **kwargs)


class FeedRunner:
    def __init__(
        self,
        *,
        ws_url: str | None = None,
        rest: BinanceRestClient | None = None,
        stale_seconds: float | None = None,
        batch_interval: float = 0.25,
        batch_size: int = 1000,
        publish_interval: float = 1.0,
        supervise_interval: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retry_backfill_after: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.ws_url = ws_url or settings.BINANCE_WS_URL
        self.rest = rest or BinanceRestClient.from_settings()
        self.stale_seconds = settings.FEED_STALE_SECONDS if stale_seconds is None else stale_seconds
        self.batch_interval = batch_interval
        self.batch_size = batch_size
        self.publish_interval = publish_interval
        self.supervise_interval = supervise_interval
        self.retry_backfill_after = retry_backfill_after
        # Market time (backfill ranges, sessions, readiness). Tests run the simulator
        # on an accelerated clock and hand the same clock here.
        self.clock = clock
        self.manager = ConnectionManager(
            ws_url=self.ws_url, on_trade=self._on_trade, on_kline=self._on_kline,
            stale_seconds=self.stale_seconds, backoff_base=backoff_base, backoff_cap=backoff_cap,
            on_state_change=self._on_connection_state,
            stall_min_seconds=settings.FEED_STALL_MIN_SECONDS, stall_factor=settings.FEED_STALL_FACTOR,
        )
        # Which trades this process already stored (one per feed process).
        self.dedupe = TradeDedupe()
        self._trades: list[Trade] = []
        self._klines: list[Kline] = []
        self._flush_now = asyncio.Event()
        # One thread each, so a slow backfill never delays trade ingestion or the
        # health heartbeat, and each thread's DB connection can be closed at the end.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-db")
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-backfill")
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-health")
        self._live: dict[str, set[str]] = {}          # market -> symbols streamed
        self._last_backfill: dict[str, float] = {}
        self._background: set[asyncio.Task] = set()
        self._stopping = False
        # Set when another feed took the lease over: this one stops without marking
        # the markets STOPPED under the active feed (pipeline.feeds.standby).
        self.keep_readiness_on_stop = False
        self._started_at = time.time()
        self._rate_mark = (time.monotonic(), 0, 0)
        # Rings the strategy runner when a committed batch closed a candle.
        self.candle_closes = CandleCloseWatch()
        self.counters: dict[str, int] = {"batches": 0, "trades_ingested": 0, "klines_ingested": 0,
                                         "ingest_errors": 0, "backfilled": 0, "dropped_trades": 0}
        # Decides outcomes from the ingested trades on its own thread (pipeline.outcomes).
        self.outcomes = OutcomeTracker(clock=clock)

    # --- stream callbacks (run inside connection tasks: keep them O(1)) -----------------

    def _on_trade(self, trade: Trade) -> None:
        self._trades.append(trade)
        if len(self._trades) >= self.batch_size:
            self._flush_now.set()

    def _on_kline(self, kline: Kline) -> None:
        # Trades build the forming candle; the exchange's closed kline is final and
        # repairs whatever the trade stream missed.
        if kline.closed:
            self._klines.append(kline)

    def _on_connection_state(self, name: str, old: ConnectionState, new: ConnectionState, reason: str) -> None:
        if new is not ConnectionState.CONNECTED:
            return
        conn = next((c for c in self.manager.connections() if c.name == name), None)
        if conn is None or conn.health.reconnects == 0:
            return
        # Backfill from the exchange time of the oldest "last trade" among the
        # connection's symbols (no message has arrived on the new socket yet, so these
        # are still the values from before the drop).
        live = set().union(*self._live.values()) if self._live else set()
        symbols = sorted(conn.symbols() & live)
        marks = [conn.health.symbol_last_market_ms.get(s) for s in symbols]
        since_ms = min(marks) if marks and all(marks) else None
        if symbols:
            self._spawn(self._backfill(symbols, since_ms=since_ms, why=f"{name} reconnected"))

    # --- lifecycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self.manager.start()
        self.outcomes.start()
        flusher = asyncio.create_task(self._flush_forever(), name="feed-flush")
        loops = [
            asyncio.create_task(self._supervise_forever(), name="feed-supervise"),
            asyncio.create_task(self._publish_forever(), name="feed-publish"),
        ]
        try:
            await stop.wait()
        finally:
            logger.info("feed stopping")
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.manager.stop()  # no more trades arrive after this
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            # Never cancel the flusher: a batch handed to the database thread would be
            # lost. It notices _stopping, flushes what is left and returns.
            self._stopping = True
            self._flush_now.set()
            await flusher
            await asyncio.get_running_loop().run_in_executor(None, self.outcomes.stop)
            for market in list(self._live) if not self.keep_readiness_on_stop else ():
                await self._readiness_move(market, ReadinessState.STOPPED, "feed process stopped")
            try:
                if not self.keep_readiness_on_stop:  # else the active feed's health is published there
                    await self._on_thread(self._publisher, feed_health_clear)
            except Exception:  # noqa: BLE001 - Redis down at shutdown: keys expire anyway
                logger.warning("could not clear feed health in Redis", exc_info=True)
            await self.close()
            logger.info("feed stopped")

    async def close(self) -> None:
        """Close the worker threads and their database connections (run() does this)."""
        self.candle_closes.close()
        for executor in (self._db, self._io, self._publisher):
            try:
                await self._on_thread(executor, connections.close_all)
            except RuntimeError:  # already shut down
                continue
            executor.shutdown(wait=True)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_thread(self, executor: ThreadPoolExecutor, func: Callable[..., Any], *args: Any,
                         **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: _db_call(func, *args, **kwargs))

    # --- batching ------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._flush_now.wait(), self.batch_interval)
            except asyncio.TimeoutError:
                pass
            self._flush_now.clear()
            await self._flush()
        await self._flush()

    async def _flush(self) -> None:
        trades, self._trades = self._trades, []
        klines, self._klines = self._klines, []
        if not trades and not klines:
            return
        try:
            if trades:
                await self._on_thread(self._db, trades_ingest, trades=trades, dedupe=self.dedupe)
            if klines:
                await self._on_thread(self._db, klines_ingest, klines=klines)
        except Exception:  # noqa: BLE001 - keep the batch; the DB may be back next time
            self.counters["ingest_errors"] += 1
            logger.exception("ingest failed for %d trades / %d klines; will retry", len(trades), len(klines))
            self._trades[:0] = trades
            self._klines[:0] = klines
            excess = len(self._trades) - MAX_PENDING_TRADES
            if excess > 0:
                del self._trades[:excess]
                self.counters["dropped_trades"] += excess
                logger.error("dropped %d buffered trades (database unreachable); gap backfill will repair", excess)
            return
        self.outcomes.feed(trades)
        self.candle_closes.after_batch(trades, klines)
        self.counters["batches"] += 1
        self.counters["trades_ingested"] += len(trades)
        self.counters["klines_ingested"] += len(klines)

    # --- markets, sessions, readiness ---------------------------------------------

    async def _supervise_forever(self) -> None:
        while True:
            try:
                await self.supervise_once()
            except Exception:  # noqa: BLE001 - a failed pass is retried on the next one
                logger.exception("supervisor pass failed")
            await asyncio.sleep(self.supervise_interval)

    async def supervise_once(self, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        instruments = await self._on_thread(self._db, feed_instruments)
        by_market: dict[str, set[str]] = {}
        for instrument in instruments:
            by_market.setdefault(instrument.market, set()).add(instrument.symbol)
        for market in sorted(set(by_market) | set(self._live)):
            symbols = by_market.get(market, set())
            if not symbols or not market_is_open(market, now):
                await self._market_down(market, symbols, market_session(market, now) if symbols else None)
                continue
            added = symbols - self._live.get(market, set())
            removed = self._live.get(market, set()) - symbols
            if removed:
                await self.manager.unsubscribe(s for sym in removed for s in streams_for_symbol(sym))
            self._live[market] = symbols
            if added:
                fresh_start = len(added) == len(symbols)
                if fresh_start:
                    await self._readiness_move(market, ReadinessState.WAITING_DATA,
                                               f"session open: subscribing and backfilling {len(symbols)} symbols")
                # Subscribe first, then backfill up to now: the stream covers from
                # here on, the backfill covers until here, and upserts make the overlap
                # harmless.
                await self.manager.subscribe(s for sym in sorted(added) for s in streams_for_symbol(sym))
                await self._backfill(sorted(added), since_ms=None, why=f"{market} session start")
            await self._judge(market, symbols, now)

    async def _market_down(self, market: str, symbols: set[str], session: dict | None) -> None:
        streamed = self._live.pop(market, set())
        if streamed:
            await self.manager.unsubscribe(s for sym in streamed for s in streams_for_symbol(sym))
        if session is None:
            await self._readiness_move(market, ReadinessState.STOPPED, "no active instruments")
        else:
            await self._readiness_move(market, ReadinessState.STOPPED,
                                       f"session closed; next open {session['next_open']}")

    async def _judge(self, market: str, symbols: set[str], now: dt.datetime) -> None:
        await self._readiness_move(market, ReadinessState.CHECKING_DATA, "checking freshness and completeness",
                                   only_from=(ReadinessState.WAITING_DATA, ReadinessState.STOPPED))
        ok, reason = await self._on_thread(self._db, readiness_check, market=market, now=now)
        if not ok:
            await self._readiness_move(market, ReadinessState.ERROR, reason)
            if time.monotonic() - self._last_backfill.get(market, 0.0) > self.retry_backfill_after:
                await self._backfill(sorted(symbols), since_ms=None, why=f"{market} not ready: retry")
            return
        health = self.manager.symbol_health()
        unhealthy = sorted(s for s in symbols if not health.get(s, {}).get("healthy"))
        if unhealthy:
            await self._readiness_move(market, ReadinessState.READY,
                                       f"{reason}; waiting for stream: {', '.join(unhealthy)}")
        else:
            await self._readiness_move(market, ReadinessState.ACTIVE, f"streaming {len(symbols)} symbols; {reason}")

    async def _readiness_move(self, market: str, target: ReadinessState, reason: str,
                              only_from: tuple[ReadinessState, ...] | None = None) -> None:
        moves = await self._on_thread(self._db, readiness_move, market=market, target=target, reason=reason,
                               only_from=only_from)
        for old, new in moves:
            if old == new:
                logger.info("market %s: %s (%s)", market, new, reason)
            else:
                logger.info("market %s: %s -> %s (%s)", market, old, new, reason)

    async def _backfill(self, symbols: list[str], *, since_ms: int | None, why: str) -> None:
        """Store the exchange's klines of *closed* minutes in [since, now).

        The forming minute is left to the trade stream: a partial REST kline
        overwritten by, or merged with, trades arriving at the same time could count
        some trades twice. That minute becomes exact when its closed kline arrives
        on the kline stream (or through the next backfill).
        """
        now_ms = int(self.clock() * 1000)
        until = now_ms - now_ms % MINUTE_MS
        window_start = until - settings.READINESS_WINDOW_MINUTES * MINUTE_MS
        start = window_start if since_ms is None else since_ms - since_ms % MINUTE_MS
        if start >= until:
            return
        self.outcomes.hold(symbols)  # their trades wait until these candles are stored
        for market, live in self._live.items():
            if set(symbols) & live:
                self._last_backfill[market] = time.monotonic()
        for symbol in symbols:
            try:
                stored = await self._on_thread(self._io, candles_backfill, symbol=symbol, since_ms=start,
                                        until_ms=until, fetch=self.rest.klines)
            except Exception as exc:  # noqa: BLE001 - REST down or rate limited: the check reports it
                logger.warning("backfill %s (%s) failed: %s", symbol, why, exc)
                continue
            self.counters["backfilled"] += stored
            self.outcomes.candles_filled(symbol, until)
            logger.info("backfilled %s: %d klines since %s (%s)", symbol, stored,
                        dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc).isoformat(), why)

    # --- health publishing ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        stats = self.manager.stats()
        per_connection = stats.pop("per_connection")
        now = time.monotonic()
        then, messages_then, trades_then = self._rate_mark
        elapsed = max(1e-6, now - then)
        rates = {
            "messages_per_second": round((stats["messages"] - messages_then) / elapsed, 2),
            "trades_per_second": round((stats["trades"] - trades_then) / elapsed, 2),
        }
        self._rate_mark = (now, stats["messages"], stats["trades"])
        return {
            "symbols": self.manager.symbol_health(),
            "connections": per_connection,
            "process": {
                "started_at": self._started_at,
                "ws_url": self.ws_url,
                "stats": stats,
                **rates,
                "counters": dict(self.counters),
                "markets": {m: sorted(s) for m, s in self._live.items()},
                "rest_keys": self.rest.usage(),
            },
        }

    async def _publish_forever(self) -> None:
        while True:
            # Self-healing: a socket that stays open while its data stopped is cut and
            # reconnected here (the reconnect backfills the silent stretch from REST).
            self.manager.recycle_stalled()
            snap = self.snapshot()
            try:
                await self._on_thread(self._publisher, feed_health_publish, symbols=snap["symbols"],
                               connections=snap["connections"], process=snap["process"],
                               ttl=max(10, int(self.publish_interval * 5)))
            except Exception as exc:  # noqa: BLE001 - Redis down: keep streaming
                logger.warning("could not publish feed health: %s", exc)
            try:
                # Reconnects asked for from outside (an operator, another process).
                for command in await self._on_thread(self._publisher, feed_commands_take):
                    if command.get("reconnect"):
                        self.manager.recycle(str(command["reconnect"]), str(command.get("reason") or "requested"))
            except Exception as exc:  # noqa: BLE001 - Redis down: nothing can be asked
                logger.debug("could not read feed commands: %s", exc)
            await asyncio.sleep(self.publish_interval)
