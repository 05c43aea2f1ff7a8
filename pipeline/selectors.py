"""Market-data reads: candles, latest price, gaps, freshness, health.

Views, commands, tasks and other apps (signals.stats, pipeline.health) read market
data only through these functions.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.utils import timezone

from signals.models import Instrument

from .aggregation import MINUTE_MS, TIMEFRAME_MS, dt_to_ms, expected_buckets, gaps_find, ms_to_dt
from .latest_prices import LatestPrice, latest_price_get
from .models import Candle, FeedLease, HealthSnapshot, MarketReadiness, ReadinessState
from .readiness import SymbolData, readiness_evaluate
from .sessions import known_markets, market_is_open, market_session, session_intervals

MAX_CANDLES = 1000
# The one FeedLease row every run_feed of a database competes for.
FEED_LEASE_NAME = "run_feed"


class UnknownSymbolError(LookupError):
    """No instrument has this symbol."""

    def __init__(self, symbol: str):
        super().__init__(f"Unknown symbol '{symbol}'.")
        self.symbol = symbol


def instrument_get(*, symbol: str) -> Instrument:
    """The instrument for `symbol` (any case); raises UnknownSymbolError."""
    instrument = Instrument.objects.filter(symbol=(symbol or "").strip().upper()).first()
    if instrument is None:
        raise UnknownSymbolError(symbol)
    return instrument


def _followed(qs: QuerySet[Instrument]) -> QuerySet[Instrument]:
    """The one FEED_SYMBOLS rule: when set, only those symbols are followed."""
    if settings.FEED_SYMBOLS:
        qs = qs.filter(symbol__in=[s.upper() for s in settings.FEED_SYMBOLS])
    return qs


def feed_instruments(*, market: str | None = None) -> list[Instrument]:
    """Active instruments the pipeline follows: FEED_SYMBOLS when set, else all active."""
    qs = _followed(Instrument.objects.filter(active=True))
    if market is not None:
        qs = qs.filter(market=market)
    return list(qs.order_by("symbol"))


def candles_list(*, symbol: str, timeframe: str, limit: int = 200) -> list[Candle]:
    """The newest `limit` candles of a symbol and timeframe, oldest first."""
    instrument = instrument_get(symbol=symbol)
    limit = max(1, min(limit, MAX_CANDLES))
    rows = list(Candle.objects.filter(instrument=instrument, timeframe=timeframe).order_by("-open_time")[:limit])
    rows.reverse()
    return rows


def minute_newest(*, instrument_id: int) -> tuple[int, int] | None:
    """(open ms, data-reached ms) of an instrument's newest 1m candle."""
    row = (
        Candle.objects.filter(instrument_id=instrument_id, timeframe="1m")
        .order_by("-open_time")
        .values_list("open_time", "last_trade_ms")
        .first()
    )
    return None if row is None else (dt_to_ms(row[0]), row[1])


def latest_price(*, symbol: str) -> LatestPrice | None:
    """Latest price from the Redis cache, else the close of the newest stored candle
    (so a Redis restart does not blank the price). None when there is no data."""
    instrument = instrument_get(symbol=symbol)
    cached = latest_price_get(symbol=instrument.symbol)
    if cached is not None:
        return cached
    row = (
        Candle.objects.filter(instrument=instrument, timeframe="1m")
        .order_by("-open_time")
        .values_list("close", "open_time", "last_trade_ms")
        .first()
    )
    if row is None:
        return None
    close, open_time, last_ms = row
    return LatestPrice(symbol=instrument.symbol, price=Decimal(close), ts_ms=max(dt_to_ms(open_time), last_ms))


def _age_seconds(reached_ms: int, now: dt.datetime) -> float:
    return max(0.0, (dt_to_ms(now) - reached_ms) / 1000)


def newest_candle_age_seconds(*, symbol: str, now: dt.datetime | None = None) -> float | None:
    """Seconds since the newest market data stored for `symbol` (the last trade
    merged into its newest 1m candle, or that kline's end for an exchange kline);
    None when no candle exists."""
    instrument = instrument_get(symbol=symbol)
    newest = minute_newest(instrument_id=instrument.id)
    if newest is None:
        return None
    return _age_seconds(max(newest), now or timezone.now())


def candle_gaps(*, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
    """Missing candles of `symbol` as merged [start_ms, end_ms) ranges over
    [since_ms, until_ms). Only buckets inside the market's sessions and already over
    by `until_ms` count: a closed market or a forming candle is not a gap."""
    if timeframe not in TIMEFRAME_MS:
        raise ValueError(f"Unsupported timeframe '{timeframe}': use one of {', '.join(TIMEFRAME_MS)}.")
    instrument = instrument_get(symbol=symbol)
    if until_ms <= since_ms:
        return []
    size = TIMEFRAME_MS[timeframe]
    intervals = [(dt_to_ms(lo), dt_to_ms(hi))
                 for lo, hi in session_intervals(instrument.market, ms_to_dt(since_ms - since_ms % size),
                                                 ms_to_dt(until_ms))]
    expected = expected_buckets(intervals, size, since_ms, until_ms)
    if not expected:
        return []
    present = Candle.objects.filter(
        instrument=instrument, timeframe=timeframe,
        open_time__gte=ms_to_dt(expected[0]), open_time__lte=ms_to_dt(expected[-1]),
    ).values_list("open_time", flat=True)
    return gaps_find((dt_to_ms(t) for t in present), expected, size)


def minute_open_times(*, instrument_id: int, since_ms: int, until_ms: int) -> set[int]:
    """Open times (ms) of the stored 1m candles of an instrument in [since, until)."""
    rows = Candle.objects.filter(
        instrument_id=instrument_id, timeframe="1m",
        open_time__gte=ms_to_dt(since_ms), open_time__lt=ms_to_dt(until_ms),
    ).values_list("open_time", flat=True)
    return {dt_to_ms(t) for t in rows}


def market_updates_since(*, since: dt.datetime) -> dict[str, int]:
    """Market updates per market since `since`: the number of 1m candles recorded
    (one per symbol per minute with data), which counts minutes of live market data
    rather than raw trades, so it is comparable across quiet and busy symbols."""
    ids = [i.id for i in feed_instruments()] or list(Instrument.objects.values_list("id", flat=True))
    rows = (
        Candle.objects.filter(instrument_id__in=ids, timeframe="1m", open_time__gte=since)
        .values("instrument__market")
        .annotate(n=Count("id"))
        .values_list("instrument__market", "n")
    )
    return {market: n for market, n in rows}


def readiness_rows() -> dict[str, MarketReadiness]:
    return {r.market: r for r in MarketReadiness.objects.all()}


def _instruments_with_newest() -> QuerySet[Instrument]:
    newest = Candle.objects.filter(instrument=OuterRef("pk"), timeframe="1m").order_by("-open_time")
    return _followed(Instrument.objects.filter(active=True)).annotate(
        newest_open=Subquery(newest.values("open_time")[:1]),
        newest_reached_ms=Subquery(newest.values("last_trade_ms")[:1]),
    ).order_by("symbol")


def market_data_health(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Market-data component of /health/.

    "ok" when every symbol of every open market has a candle younger than
    READINESS_MAX_CANDLE_AGE_SECONDS and no market is in ERROR; "degraded" when some
    are stale or missing (or a market is in ERROR); "down" when every symbol of the
    open markets is stale. Closed markets are reported but never judged.
    """
    now = now or timezone.now()
    max_age = settings.READINESS_MAX_CANDLE_AGE_SECONDS
    readiness = readiness_rows()
    markets: dict[str, dict[str, Any]] = {}
    judged = stale = 0
    stale_symbols: list[str] = []
    for instrument in _instruments_with_newest():
        market = markets.get(instrument.market)
        if market is None:
            row = readiness.get(instrument.market)
            market = markets[instrument.market] = {
                "open": market_is_open(instrument.market, now),
                "readiness": {
                    "state": row.state if row else ReadinessState.WAITING_DATA.value,
                    "reason": row.reason if row else "not checked yet",
                    "updated_at": row.updated_at.isoformat() if row else None,
                },
                "symbols": {},
            }
        age = None
        if instrument.newest_open is not None:
            age = round(_age_seconds(max(dt_to_ms(instrument.newest_open), instrument.newest_reached_ms), now), 1)
        fresh = age is not None and age <= max_age
        market["symbols"][instrument.symbol] = {"newest_candle_age_seconds": age, "fresh": fresh}
        if market["open"]:
            judged += 1
            if not fresh:
                stale += 1
                stale_symbols.append(instrument.symbol)
    errors = [m for m, info in markets.items() if info["readiness"]["state"] == ReadinessState.ERROR]
    if judged and stale == judged:
        status = "down"
    elif stale or errors:
        status = "degraded"
    else:
        status = "ok"
    detail = []
    if stale_symbols:
        detail.append(f"stale or missing candles (max age {max_age}s): {', '.join(stale_symbols)}")
    if errors:
        detail.append(f"markets in ERROR: {', '.join(errors)}")
    return {"status": status, "detail": "; ".join(detail) or "fresh", "max_age_seconds": max_age,
            "markets": markets}


def health_snapshot_latest() -> HealthSnapshot | None:
    """The newest stored health check, or None before the first one."""
    return HealthSnapshot.objects.order_by("-created_at").first()


def feed_lease_get() -> FeedLease | None:
    """Who holds the feed lease (pipeline.services.feed_lease_acquire), if anyone ever did."""
    return FeedLease.objects.filter(name=FEED_LEASE_NAME).first()


def known_market_check(*, market: str) -> str:
    """`market` when it is one of the known markets; raises ValueError naming them."""
    if market not in known_markets():
        raise ValueError(f"Unknown market '{market}': must be one of {', '.join(known_markets())}.")
    return market


def readiness_get(*, market: str) -> tuple[ReadinessState, str, dt.datetime | None]:
    """(state, reason, updated_at); a market never set is WAITING_DATA."""
    known_market_check(market=market)
    row = MarketReadiness.objects.filter(market=market).first()
    if row is None:
        return ReadinessState.WAITING_DATA, "not checked yet", None
    return ReadinessState(row.state), row.reason, row.updated_at


def readiness_check(*, market: str, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Freshness and completeness of `market`'s data at `now`, over the last
    READINESS_WINDOW_MINUTES full minutes, counting only minutes inside the session."""
    known_market_check(market=market)
    now = now or timezone.now()
    if not market_is_open(market, now):
        session = market_session(market, now)
        return False, f"market closed (next open {session['next_open']})"
    now_ms = dt_to_ms(now)
    until = now_ms - now_ms % MINUTE_MS
    since = until - settings.READINESS_WINDOW_MINUTES * MINUTE_MS
    intervals = [(dt_to_ms(lo), dt_to_ms(hi)) for lo, hi in session_intervals(
        market, now - dt.timedelta(milliseconds=now_ms - since), now)]
    expected = set(expected_buckets(intervals, MINUTE_MS, since, until))
    data = []
    for instrument in feed_instruments(market=market):
        newest = minute_newest(instrument_id=instrument.id)
        present = minute_open_times(instrument_id=instrument.id, since_ms=since, until_ms=until) & expected
        age = None if newest is None else max(0.0, (now_ms - max(newest)) / 1000)
        data.append(SymbolData(instrument.symbol, age, len(present), len(expected)))
    return readiness_evaluate(
        data,
        max_age_seconds=settings.READINESS_MAX_CANDLE_AGE_SECONDS,
        min_completeness=settings.READINESS_MIN_COMPLETENESS,
    )
