"""Market-data writes: trades and exchange klines into candles, backfill, gap repair.

Every candle write goes through here (and from here through pipeline.candle_sql),
so the merge rules that keep candles correct under duplicate, late and replayed
data live in one place. Higher timeframes are recomputed from the stored 1m rows
after every write, in the same transaction, so 5m/15m/1h never disagree with 1m.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Callable, Sequence

from django.db import transaction
from django.utils import timezone

from signals.models import Instrument

from . import candle_sql
from .aggregation import (
    TIMEFRAME_MS,
    PartialCandle,
    TradeDeduper,
    batch_cutoffs,
    bucket_start,
    candles_from_trades,
    dt_to_ms,
    kline_to_partial,
    rollup_buckets,
)
from .candle_sql import UpsertMode
from .feeds.rest import KlineFetch, kline_pages
from .latest_prices import latest_prices_set
from .models import Candle, CandleSource, FeedLease, HealthSnapshot, MarketReadiness, ReadinessState
from .readiness import TRANSITIONS, ReadinessTransitionError, readiness_path
from .selectors import (
    FEED_LEASE_NAME,
    UnknownSymbolError,
    candle_gaps,
    feed_instruments,
    known_market_check,
    readiness_get,
)
from .sessions import market_is_open
from .market_data import Kline, Trade

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
BACKFILL_PAGE = 1000

class TradeDedupe:
    """The trades a feed process has already stored, so a replayed, duplicated or late
    trade is never counted twice. Owned by the one caller that feeds trades (the
    FeedRunner); a new instance is a fresh process and starts from what the database
    holds (the newest stored trade per instrument). The lock makes filter -> write ->
    remember one step, so two overlapping calls can never both accept a trade."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deduper = TradeDeduper()
        self._instrument: dict[str, int] = {}

    def seed(self, ids: dict[str, int]) -> None:
        """Symbols not seen yet (or whose instrument row changed) start from the database."""
        for symbol, instrument_id in ids.items():
            if self._instrument.get(symbol) != instrument_id:
                self.deduper.forget(symbol)
                self.deduper.seed(symbol, _stored_floor(instrument_id))
                self._instrument[symbol] = instrument_id


def _stored_floor(instrument_id: int) -> tuple[int, int] | None:
    """(time ms, trade id) of the newest trade already stored for an instrument."""
    return (
        Candle.objects.filter(instrument_id=instrument_id, timeframe="1m")
        .order_by("-open_time")
        .values_list("last_trade_ms", "last_trade_id")
        .first()
    )


def _newest_prices(trades: Sequence[Trade]) -> dict[str, tuple]:
    newest: dict[str, Trade] = {}
    for t in trades:
        best = newest.get(t.symbol)
        if best is None or (t.ts_ms, t.trade_id) > (best.ts_ms, best.trade_id):
            newest[t.symbol] = t
    return {s: (t.price, t.ts_ms) for s, t in newest.items()}


def trades_ingest(*, trades: Sequence[Trade], dedupe: TradeDedupe) -> dict:
    """Aggregate a batch of trades into candles and upsert them; update the latest price.

    Safe with duplicates inside a batch, across batches and (by the stored newest
    trade) across process restarts; out-of-order trades give the same candles as
    in-order ones. Returns {"received", "accepted", "duplicates", "late",
    "unknown_symbol", "candles_written"}.
    """
    stats = {"received": len(trades), "accepted": 0, "duplicates": 0, "late": 0,
             "unknown_symbol": 0, "candles_written": 0}
    if not trades:
        return stats
    symbols = {t.symbol for t in trades}
    now = timezone.now()
    with dedupe.lock:
        with transaction.atomic():
            ids = candle_sql.instruments_lock(symbols=symbols)
            known = trades if len(ids) == len(symbols) else [t for t in trades if t.symbol in ids]
            stats["unknown_symbol"] = len(trades) - len(known)
            dedupe.seed(ids)
            result = dedupe.deduper.fresh(known)
            stats["duplicates"], stats["late"] = result.duplicates, result.late
            if result.fresh:
                minutes = candles_from_trades(result.fresh)
                # Duplicates and late trades still prove how far the exchange got.
                cutoffs = batch_cutoffs(known)
                stats["candles_written"] = candle_sql.candles_write(
                    candles=minutes, instrument_ids=ids, mode=UpsertMode.MERGE, source=CandleSource.TRADES,
                    cutoffs=cutoffs, rollups=rollup_buckets(((c.symbol, c.open_ms) for c in minutes), cutoffs),
                    now=now, durable=False,
                )
        # Remembered only once committed: a failed write leaves the trades acceptable
        # for the caller's retry.
        dedupe.deduper.remember(result)
    stats["accepted"] = len(result.fresh)
    if stats["unknown_symbol"]:
        logger.warning("dropped %d trades of unknown symbols", stats["unknown_symbol"])
    if result.fresh:
        latest_prices_set(prices=_newest_prices(result.fresh))
    return stats


def klines_ingest(*, klines: Sequence[Kline]) -> int:
    """Upsert exchange klines (REST backfill, polling fallback, kline stream).
    Closed klines are authoritative and final; an in-progress kline only replaces a
    still-open candle. Returns the number of rows written (rollups included)."""
    if not klines:
        return 0
    for k in klines:
        if k.timeframe not in TIMEFRAME_MS:
            raise ValueError(f"Unsupported timeframe '{k.timeframe}': use one of {', '.join(TIMEFRAME_MS)}.")
    now = timezone.now()
    with transaction.atomic():
        ids = candle_sql.instruments_lock(symbols={k.symbol for k in klines})
        rows = [kline_to_partial(k) for k in klines if k.symbol in ids]
        # A kline that is still forming proves the exchange reached its open; a closed
        # one proves it reached its end.
        cutoffs: dict[str, int] = {}
        for c in rows:
            reached = c.close_ms if c.closed else c.open_ms
            cutoffs[c.symbol] = max(cutoffs.get(c.symbol, -1), reached)
        written = candle_sql.candles_write(
            candles=rows, instrument_ids=ids, mode=UpsertMode.KLINE, source=CandleSource.EXCHANGE, cutoffs=cutoffs,
            rollups=rollup_buckets(((c.symbol, c.open_ms) for c in rows if c.timeframe == "1m"), cutoffs), now=now,
        )
    if len(rows) < len(klines):
        logger.warning("dropped %d klines of unknown symbols", len(klines) - len(rows))
    now_ms = dt_to_ms(now)
    newest: dict[str, PartialCandle] = {}
    for c in rows:
        if c.symbol not in newest or c.open_ms > newest[c.symbol].open_ms:
            newest[c.symbol] = c
    latest_prices_set(prices={s: (c.close, min(c.close_ms - 1, now_ms)) for s, c in newest.items()})
    return written


def candles_backfill(*, symbol: str, since_ms: int, until_ms: int | None = None, fetch: KlineFetch,
                     progress: Progress | None = None, timeframe: str = "1m") -> int:
    """Page exchange klines of `symbol` over [since_ms, until_ms) (until: now) through
    `fetch(symbol, interval, start_ms, end_ms, limit)` and store them. `progress(done,
    total)` is called after each page, in buckets. Returns klines stored."""
    symbol = symbol.upper()
    if not Instrument.objects.filter(symbol=symbol).exists():
        raise UnknownSymbolError(symbol)
    if timeframe not in TIMEFRAME_MS:
        raise ValueError(f"Unsupported timeframe '{timeframe}': use one of {', '.join(TIMEFRAME_MS)}.")
    size = TIMEFRAME_MS[timeframe]
    until = until_ms if until_ms is not None else int(time.time() * 1000)
    start = bucket_start(since_ms, timeframe)
    total = max(0, -(-(until - start) // size))
    stored = 0
    for page in kline_pages(fetch, symbol=symbol, interval=timeframe, since_ms=start, until_ms=until,
                            limit=BACKFILL_PAGE):
        klines_ingest(klines=page)
        stored += len(page)
        if progress is not None:
            done = (max(k.open_ms for k in page) + size - start) // size
            progress(min(total, done), total)
    if progress is not None:
        progress(total, total)
    return stored


def candles_close_elapsed(*, now: dt.datetime, grace_seconds: float = 5.0) -> int:
    """Close candles whose time ended more than `grace_seconds` ago, for symbols
    that went quiet (no later trade or kline to close them). Returns rows closed."""
    cutoff = dt_to_ms(now) - int(grace_seconds * 1000)
    open_ids = list(Candle.objects.filter(closed=False).values_list("instrument_id", flat=True).distinct())
    with transaction.atomic():
        ids = candle_sql.instruments_lock(instrument_ids=open_ids).values()
        return candle_sql.candles_close_until(cutoffs={i: cutoff for i in ids}, now=timezone.now())


def candles_gap_repair(*, now: dt.datetime, hours: float, fetch: KlineFetch) -> dict[str, int]:
    """For every fed symbol whose market is open now: find missing 1m candles over the
    last `hours` (inside the market's sessions) and backfill them from REST. Also
    closes candles whose time is over. Returns {symbol: klines stored}."""
    candles_close_elapsed(now=now)
    now_ms = dt_to_ms(now)
    since_ms = now_ms - int(hours * 3_600_000)
    repaired: dict[str, int] = {}
    for instrument in feed_instruments():
        if not market_is_open(instrument.market, now):
            continue
        stored = 0
        for start, end in candle_gaps(symbol=instrument.symbol, timeframe="1m", since_ms=since_ms, until_ms=now_ms):
            try:
                stored += candles_backfill(symbol=instrument.symbol, since_ms=start, until_ms=end, fetch=fetch)
            except Exception:  # noqa: BLE001 - one symbol's failure must not stop the others
                logger.exception("gap backfill failed for %s [%s, %s)", instrument.symbol, start, end)
                break
        repaired[instrument.symbol] = stored
    return repaired



# --- health history ----------------------------------------------------------------

def health_snapshot_record(*, health: dict, totals: dict, now: dt.datetime, keep_hours: float) -> HealthSnapshot:
    """Store one scored check (with the counter totals the next check diffs against)
    and prune snapshots older than `keep_hours`: the only rows that are ever pruned."""
    facts = {"totals": totals, "database": health.get("database"), "redis": health.get("redis")}
    with transaction.atomic():
        row = HealthSnapshot.objects.create(created_at=now, status=health["status"], score=health["score"],
                                            components=health["components"], facts=facts)
        HealthSnapshot.objects.filter(created_at__lt=now - dt.timedelta(hours=keep_hours)).delete()
    return row


# --- the single active feed ------------------------------------------------------------

def feed_lease_acquire(*, holder: str, lease_seconds: float, now: dt.datetime | None = None) -> bool:
    """Take or renew the feed lease for `holder`. True when `holder` holds it now.

    One conditional UPDATE decides (the row is created once, unheld-looking), so
    two standbys racing for an expired lease cannot both win, on PostgreSQL and
    SQLite alike.
    """
    now = now or timezone.now()
    FeedLease.objects.get_or_create(name=FEED_LEASE_NAME, defaults={
        "holder": "", "acquired_at": now, "heartbeat_at": now - dt.timedelta(days=1)})
    expired = now - dt.timedelta(seconds=lease_seconds)
    renewed = FeedLease.objects.filter(name=FEED_LEASE_NAME, holder=holder).update(heartbeat_at=now)
    if renewed:
        return True
    taken = (FeedLease.objects.filter(name=FEED_LEASE_NAME, heartbeat_at__lt=expired)
             .update(holder=holder, acquired_at=now, heartbeat_at=now))
    return bool(taken)


def feed_lease_release(*, holder: str) -> bool:
    """Give the lease up at a clean shutdown so a standby takes over at once."""
    past = timezone.now() - dt.timedelta(days=1)
    return bool(FeedLease.objects.filter(name=FEED_LEASE_NAME, holder=holder).update(heartbeat_at=past))


# --- readiness ---------------------------------------------------------------------------

def readiness_set(*, market: str, state: ReadinessState | str, reason: str) -> MarketReadiness:
    """Move `market` to `state` with a reason; raises ReadinessTransitionError when
    the move is not allowed. Row-locked, so two workers cannot interleave moves."""
    known_market_check(market=market)
    state = ReadinessState(state)
    with transaction.atomic():
        row, _ = MarketReadiness.objects.get_or_create(
            market=market, defaults={"state": ReadinessState.WAITING_DATA, "reason": "", "updated_at": timezone.now()}
        )
        row = MarketReadiness.objects.select_for_update().get(pk=row.pk)
        if state != row.state and state not in TRANSITIONS[row.state]:
            raise ReadinessTransitionError(f"{market}: {row.state} -> {state} is not allowed.")
        row.state, row.reason, row.updated_at = state, reason[:2000], timezone.now()
        row.save(update_fields=["state", "reason", "updated_at"])
    return row


# Staying ACTIVE/READY keeps its first reason: the reason carries ages that change
# every pass, and rewriting it would be a write per pass with no news.
_KEEP_FIRST_REASON = (ReadinessState.ACTIVE, ReadinessState.READY)


def readiness_move(*, market: str, target: ReadinessState, reason: str,
                   only_from: tuple[ReadinessState, ...] | None = None) -> list[tuple[str, str]]:
    """Move `market` to `target` through every legal intermediate state, each with
    `reason`. Nothing happens when it is not in `only_from` (when given), already
    there with this reason, or staying ACTIVE/READY. Reads the stored state first:
    another process or an operator may have moved it. Returns [(from, to)] written."""
    state, stored_reason, _ = readiness_get(market=market)
    current = ReadinessState(state)
    if only_from is not None and current not in only_from:
        return []
    if (current, stored_reason) == (target, reason) or (current == target and target in _KEEP_FIRST_REASON):
        return []
    moves = []
    for step in readiness_path(current, target) or [target]:
        readiness_set(market=market, state=step, reason=reason)
        moves.append((str(current), str(step)))
        current = ReadinessState(step)
    return moves
