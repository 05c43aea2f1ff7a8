"""Trades -> candles, as pure functions (no ORM, no clock).

Why it is built this way: the feed hands over a batch of trades every ~250 ms and
the same candle is written many times while it forms. Each batch becomes *partial*
candles that are merged into the stored row with an associative, commutative merge:
high is the max, low the min, volume and trade count add up, and open/close come
from the trade that sorts first/last by (trade time, trade id). Merging the
partials of any split of a trade set, in any order, gives the same candle as
aggregating the whole set at once, as long as every trade is counted once; the
`TradeDeduper` makes sure of that. Higher timeframes are rolled up from the 1m
candles (never straight from trades) so they can never disagree with them.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Iterable, Sequence

from .market_data import Kline, Trade

MINUTE_MS = 60_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def ms_to_dt(ms: int) -> dt.datetime:
    """Epoch milliseconds (as on the wire) -> an aware UTC datetime (as stored)."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


def dt_to_ms(value: dt.datetime) -> int:
    """An aware datetime -> epoch milliseconds."""
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)

TIMEFRAME_MS: dict[str, int] = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "1h": 60 * MINUTE_MS,
                                 "4h": 240 * MINUTE_MS, "1d": 1440 * MINUTE_MS}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MS)
ROLLUP_TIMEFRAMES: tuple[str, ...] = TIMEFRAMES[1:]
# Each higher timeframe is recomputed from the rows of its base: 4h and 1d from the
# (just recomputed) 1h rows, so a day costs 24 rows instead of 1,440. 1h buckets
# are aligned to 4h and 1d buckets (UTC), so the result is the same as from 1m.
ROLLUP_BASE: dict[str, str] = {"5m": "1m", "15m": "1m", "1h": "1m", "4h": "1h", "1d": "1h"}

# Sort keys (time ms, trade id) of rows that did not come from our own trades.
# An exchange kline's open is final (nothing sorts before it) and its close is
# replaced by any later trade.
EXCHANGE_FIRST_ID = -1
EXCHANGE_LAST_ID = -1


@dataclass(slots=True)
class PartialCandle:
    """One candle, or part of one: what a batch of trades says about a bucket."""

    symbol: str
    timeframe: str
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    first_ms: int        # (first_ms, first_id) sorts the trade that gave `open`
    first_id: int
    last_ms: int         # (last_ms, last_id) sorts the trade that gave `close`
    last_id: int
    closed: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return self.symbol, self.timeframe, self.open_ms

    @property
    def close_ms(self) -> int:
        return self.open_ms + TIMEFRAME_MS[self.timeframe]


def bucket_start(ts_ms: int, timeframe: str) -> int:
    """Open time (epoch ms) of the `timeframe` bucket holding `ts_ms`."""
    size = TIMEFRAME_MS[timeframe]
    return ts_ms - ts_ms % size


def candle_merge(a: PartialCandle, b: PartialCandle) -> PartialCandle:
    """Merge two partials of the same bucket (associative and commutative)."""
    first = a if (a.first_ms, a.first_id) <= (b.first_ms, b.first_id) else b
    last = a if (a.last_ms, a.last_id) >= (b.last_ms, b.last_id) else b
    return replace(
        a,
        open=first.open, first_ms=first.first_ms, first_id=first.first_id,
        close=last.close, last_ms=last.last_ms, last_id=last.last_id,
        high=max(a.high, b.high), low=min(a.low, b.low),
        volume=a.volume + b.volume, trades=a.trades + b.trades,
        closed=a.closed or b.closed,
    )


def candles_from_trades(trades: Iterable[Trade]) -> list[PartialCandle]:
    """1m partial candles of a batch of (already de-duplicated) trades, any order."""
    buckets: dict[tuple[str, int], PartialCandle] = {}
    get = buckets.get
    for t in trades:
        ts = t.ts_ms
        open_ms = ts - ts % MINUTE_MS
        key = (t.symbol, open_ms)
        c = get(key)
        price = t.price
        if c is None:
            buckets[key] = PartialCandle(t.symbol, "1m", open_ms, price, price, price, price, t.qty, 1,
                                         ts, t.trade_id, ts, t.trade_id)
            continue
        if price > c.high:
            c.high = price
        elif price < c.low:
            c.low = price
        c.volume += t.qty
        c.trades += 1
        tid = t.trade_id
        if ts < c.first_ms or (ts == c.first_ms and tid < c.first_id):
            c.open, c.first_ms, c.first_id = price, ts, tid
        if ts > c.last_ms or (ts == c.last_ms and tid > c.last_id):
            c.close, c.last_ms, c.last_id = price, ts, tid
    return list(buckets.values())


def candles_rollup(minutes: Iterable[PartialCandle], timeframe: str, *, cutoffs: dict[str, int] | None = None
                   ) -> list[PartialCandle]:
    """Roll 1m candles up into `timeframe` buckets. A bucket is closed when the
    symbol's cutoff (the instant the data is known to have reached) is at or past
    its end."""
    cutoffs = cutoffs or {}
    size = TIMEFRAME_MS[timeframe]
    out: dict[tuple[str, int], PartialCandle] = {}
    for m in minutes:
        start = m.open_ms - m.open_ms % size
        c = out.get((m.symbol, start))
        if c is None:
            out[(m.symbol, start)] = PartialCandle(
                m.symbol, timeframe, start, m.open, m.high, m.low, m.close, m.volume, m.trades,
                m.first_ms, m.first_id, m.last_ms, m.last_id)
            continue
        if (m.first_ms, m.first_id) < (c.first_ms, c.first_id):
            c.open, c.first_ms, c.first_id = m.open, m.first_ms, m.first_id
        if (m.last_ms, m.last_id) > (c.last_ms, c.last_id):
            c.close, c.last_ms, c.last_id = m.close, m.last_ms, m.last_id
        if m.high > c.high:
            c.high = m.high
        if m.low < c.low:
            c.low = m.low
        c.volume += m.volume
        c.trades += m.trades
    for c in out.values():
        c.closed = cutoffs.get(c.symbol, -1) >= c.open_ms + size
    return list(out.values())


@dataclass(frozen=True, slots=True, order=True)
class RollupBucket:
    """A 5m/15m/1h/4h/1d bucket to recompute from its base rows, and whether it is over."""

    symbol: str
    timeframe: str
    open_ms: int
    closed: bool

    @property
    def close_ms(self) -> int:
        return self.open_ms + TIMEFRAME_MS[self.timeframe]


def rollup_buckets(minute_starts: Iterable[tuple[str, int]], cutoffs: dict[str, int]) -> list[RollupBucket]:
    """The higher-timeframe buckets holding the given (symbol, 1m open ms), each
    closed when the symbol's cutoff is at or past its end."""
    keys = {(symbol, tf, m - m % TIMEFRAME_MS[tf]) for symbol, m in minute_starts for tf in ROLLUP_TIMEFRAMES}
    return sorted(RollupBucket(s, tf, start, cutoffs.get(s, -1) >= start + TIMEFRAME_MS[tf]) for s, tf, start in keys)


def kline_to_partial(k: Kline) -> PartialCandle:
    """An exchange kline as a candle row. Its open sorts before any trade of the
    bucket; a closed kline's close sorts after all of them."""
    size = TIMEFRAME_MS[k.timeframe]
    last_ms, last_id = (k.open_ms + size - 1, 2**62) if k.closed else (k.open_ms, EXCHANGE_LAST_ID)
    return PartialCandle(k.symbol, k.timeframe, k.open_ms, k.open, k.high, k.low, k.close, k.volume,
                         k.trades, k.open_ms, EXCHANGE_FIRST_ID, last_ms, last_id, k.closed)


def batch_cutoffs(trades: Iterable[Trade]) -> dict[str, int]:
    """Per symbol, the newest trade time in a batch: every bucket ending at or
    before it is over (the exchange has moved on)."""
    out: dict[str, int] = {}
    for t in trades:
        if t.ts_ms > out.get(t.symbol, -1):
            out[t.symbol] = t.ts_ms
    return out


def expected_buckets(intervals: Iterable[tuple[int, int]], size_ms: int, since_ms: int, until_ms: int) -> list[int]:
    """Starts (ascending) of the buckets of `size_ms` that overlap a trading interval
    [lo, hi) (epoch ms), begin at or after `since_ms`'s bucket and are over by
    `until_ms` (an unfinished bucket is not expected yet)."""
    first = since_ms - since_ms % size_ms
    starts: set[int] = set()
    for lo, hi in intervals:
        start = max(first, lo - lo % size_ms)
        while start < hi and start + size_ms <= until_ms:
            starts.add(start)
            start += size_ms
    return sorted(starts)


def gaps_find(present: Iterable[int], expected: Iterable[int], size_ms: int) -> list[tuple[int, int]]:
    """Missing buckets as merged [start_ms, end_ms) ranges: `expected` bucket starts
    (ascending) that are not in `present`."""
    have = set(present)
    gaps: list[tuple[int, int]] = []
    for start in expected:
        if start in have:
            continue
        if gaps and gaps[-1][1] == start:
            gaps[-1] = (gaps[-1][0], start + size_ms)
        else:
            gaps.append((start, start + size_ms))
    return gaps


class TradeDeduper:
    """Remembers recent trades per symbol so a trade is counted once.

    A trade is known by (trade id, trade time) inside its minute: a repeat of the
    same trade matches, while an exchange or simulator that restarts its id counter
    does not collide with older trades. Memory is bounded by `horizon_ms`: trades
    older than the newest seen minus the horizon are refused as *late* (their
    candle has long been published; counting them risks double counting because
    we no longer remember them). `seed` sets a floor from what the database
    already holds, so a restarted process does not count stored trades again.

    Two steps so a failed write loses nothing: `fresh()` filters without
    remembering, `remember()` records the trades once they are stored.
    """

    def __init__(self, horizon_ms: int = 15 * MINUTE_MS):
        self.horizon_ms = horizon_ms
        self._minutes: dict[str, dict[int, set[tuple[int, int]]]] = defaultdict(dict)
        self._newest: dict[str, int] = {}
        self._floor: dict[str, tuple[int, int]] = {}

    def forget(self, symbol: str) -> None:
        self._minutes.pop(symbol, None)
        self._newest.pop(symbol, None)
        self._floor.pop(symbol, None)

    def seed(self, symbol: str, floor: tuple[int, int] | None) -> None:
        """Trades sorting at or before `floor` (time ms, id) count as already stored."""
        self._floor[symbol] = floor if floor is not None else (-1, -1)

    def fresh(self, trades: Sequence[Trade]) -> "DedupeResult":
        """The batch's trades never seen before (grouped by symbol, in arrival order
        within a symbol), and counts of the rest. Remembers nothing until
        `remember(result)`."""
        by_symbol: dict[str, list[Trade]] = {}
        for t in trades:
            group = by_symbol.get(t.symbol)
            if group is None:
                by_symbol[t.symbol] = [t]
            else:
                group.append(t)
        fresh: list[Trade] = []
        pending: dict[tuple[str, int], set[tuple[int, int]]] = {}
        newest_in_batch: dict[str, int] = {}
        duplicates = late = 0
        for symbol, group in by_symbol.items():
            # Per-symbol state in locals, and the current minute's sets cached while
            # consecutive trades share a minute (the usual case): this loop is the
            # hot path of every feed batch.
            stored_minutes = self._minutes[symbol]
            newest = self._newest.get(symbol)
            late_before = -1 if newest is None else newest - self.horizon_ms
            floor = self._floor.get(symbol, (-1, -1))
            current, batch_seen, seen = None, set(), None
            top = -1
            for t in group:
                ts = t.ts_ms
                if ts < late_before:
                    late += 1
                    continue
                key = (ts, t.trade_id)
                if key <= floor:
                    duplicates += 1
                    continue
                minute = ts - ts % MINUTE_MS
                if minute != current:
                    current = minute
                    batch_seen = pending.get((symbol, minute))
                    if batch_seen is None:
                        batch_seen = pending[(symbol, minute)] = set()
                    seen = stored_minutes.get(minute)
                if key in batch_seen or (seen is not None and key in seen):
                    duplicates += 1
                    continue
                batch_seen.add(key)
                fresh.append(t)
                if ts > top:
                    top = ts
            if top >= 0:
                newest_in_batch[symbol] = top
        return DedupeResult(fresh, duplicates, late, pending, newest_in_batch)

    def remember(self, result: "DedupeResult") -> None:
        """Record a batch's fresh trades as stored, and forget minutes past the horizon."""
        for (symbol, minute), keys in result._pending.items():
            if keys:
                self._minutes[symbol].setdefault(minute, set()).update(keys)
        for symbol, ts in result._newest.items():
            if ts > self._newest.get(symbol, -1):
                self._newest[symbol] = ts
            horizon_start = self._newest[symbol] - self.horizon_ms - MINUTE_MS
            minutes = self._minutes[symbol]
            for minute in [m for m in minutes if m < horizon_start]:
                del minutes[minute]


@dataclass
class DedupeResult:
    fresh: list[Trade]
    duplicates: int
    late: int
    _pending: dict[tuple[str, int], set[tuple[int, int]]]
    _newest: dict[str, int]
