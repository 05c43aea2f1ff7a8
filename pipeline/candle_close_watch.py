"""The feed's doorbell for the strategy runner: evaluate right after a candle closes.

The feed closes candles in the same transaction that writes the trade batch which
moves past their end (pipeline.candle_sql), so once that batch is committed the
candle is final and strategies can decide it. Waiting for the next beat tick
would add up to its interval; instead the feed process notices, per symbol, that
a batch reached a new minute (or brought a closed exchange kline) and enqueues
`strategies_evaluate` for those symbols at once. Beat runs the same task as a
safety net (pipeline.schedule), and the runner's mark makes extra runs harmless.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

from django.db import connections

from .aggregation import MINUTE_MS
from .tasks import strategies_evaluate
from .market_data import Kline, Trade

logger = logging.getLogger(__name__)


def _enqueue_task(symbols: list[str]) -> None:
    # retry=False: with the broker down, fail now (beat's run catches up) rather
    # than hold this thread in kombu's reconnect loop.
    strategies_evaluate.apply_async(kwargs={"symbols": symbols}, retry=False, expires=300)


class CandleCloseWatch:
    """Tracks each symbol's newest minute in the feed's committed batches and rings
    the strategy runner for symbols whose minute rolled over."""

    def __init__(self, enqueue: Callable[[list[str]], None] = _enqueue_task):
        self._minute: dict[str, int] = {}
        self._enqueue = enqueue
        # Its own thread: publishing to the broker must never delay ingestion or
        # the health heartbeat, and a broker outage only costs this thread time.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-strategies")

    def closed_symbols(self, trades: Iterable[Trade], klines: Sequence[Kline] = ()) -> list[str]:
        """Symbols whose candles this committed batch closed (sorted)."""
        rolled: set[str] = set()
        minute = self._minute
        for t in trades:
            start = t.ts_ms - t.ts_ms % MINUTE_MS
            seen = minute.get(t.symbol)
            if seen is None or start > seen:
                minute[t.symbol] = start
                if seen is not None:
                    rolled.add(t.symbol)
        rolled.update(k.symbol for k in klines if k.closed)
        return sorted(rolled)

    def after_batch(self, trades: Iterable[Trade], klines: Sequence[Kline] = ()) -> list[str]:
        """Call once a batch is committed; enqueues the evaluation in the background.
        Returns the symbols it rang for."""
        symbols = self.closed_symbols(trades, klines)
        if symbols:
            self._thread.submit(self._ring, symbols)
        return symbols

    def _ring(self, symbols: list[str]) -> None:
        try:
            self._enqueue(symbols)
        except Exception as exc:  # noqa: BLE001 - the beat safety net evaluates them anyway
            logger.warning("could not enqueue strategy evaluation for %s: %s", ", ".join(symbols), exc)

    def close(self) -> None:
        # An eagerly run task (tests, CELERY_TASK_ALWAYS_EAGER) used the database here.
        self._thread.submit(connections.close_all)
        self._thread.shutdown(wait=True)
