"""Reads for the dashboard page: one consistent snapshot of the feed plus the small
aggregates its charts start from, and the market-data reads of its side panels.

Why a snapshot with a cursor: the page hands the browser the highest signal id that
existed when the rows were read. The live client resumes from there, so a signal
committed between rendering and connecting is replayed by the server instead of
being lost (ids become visible in commit order, see signals.services).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from pipeline.selectors import (
    UnknownSymbolError, feed_instruments, latest_price, minute_newest, newest_candle_age_seconds, readiness_rows,
)
from pipeline.sessions import market_session
from signals.models import Instrument, Market, OutcomeStatus, Signal, SignalEvent
from signals.selectors import decimal_str, iso_utc, signal_list, signal_max_id, signal_payloads

from .templatetags.dashboard_format import OUTCOME_LABELS

ACTIVITY_HOURS = 24
RECENT_FOR_SOURCES = 2000
# Filters the signals API applies itself; the rest are the dashboard's own.
_API_FILTERS = ("market", "symbol", "source", "direction", "outcome")


@dataclass(frozen=True)
class DashboardSnapshot:
    cursor: int
    signals: list[dict[str, Any]]
    activity: list[dict[str, Any]]
    filters: dict[str, str] = field(default_factory=dict)
    older: int | None = None  # id to page back from, None when the page holds everything
    event_cursor: int = 0  # the newest amendment id when the rows were read


def _day_start(day: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.min, tzinfo=dt.timezone.utc)


def dashboard_signals(*, filters: dict[str, str]) -> QuerySet[Signal]:
    """Signals matching the page's cleaned filters (dashboard.forms), newest first.
    Dates are whole UTC days, both ends included."""
    qs = signal_list(filters={k: v for k, v in filters.items() if k in _API_FILTERS})
    if filters.get("min_confidence"):
        qs = qs.filter(confidence__gte=int(filters["min_confidence"]))
    if filters.get("date_from"):
        qs = qs.filter(created_at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        qs = qs.filter(created_at__lt=_day_start(filters["date_to"]) + dt.timedelta(days=1))
    return qs


def signal_activity_by_hour(*, now: dt.datetime, hours: int = ACTIVITY_HOURS,
                            filters: dict[str, str] | None = None,
                            up_to_id: int | None = None) -> list[dict[str, Any]]:
    """Signals per hour over the last `hours`, split by direction, oldest hour first.
    Every hour is present (zero-filled) so the chart has no holes. `up_to_id` caps
    the count at a snapshot's cursor, so live arrivals after it are counted once."""
    start = (now - dt.timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    qs = dashboard_signals(filters=filters or {})
    if up_to_id is not None:
        qs = qs.filter(id__lte=up_to_id)
    rows = (
        qs.filter(created_at__gte=start)
        .order_by()
        .annotate(hour=TruncHour("created_at"))
        .values("hour", "direction")
        .annotate(n=Count("id"))
    )
    counts: dict[tuple[dt.datetime, str], int] = {(r["hour"], r["direction"]): r["n"] for r in rows}
    buckets = []
    for i in range(hours):
        hour = start + dt.timedelta(hours=i)
        buckets.append({
            "hour": iso_utc(hour),
            "long": counts.get((hour, "long"), 0),
            "short": counts.get((hour, "short"), 0),
        })
    return buckets


def dashboard_snapshot(*, filters: dict[str, str], limit: int = 100,
                       now: dt.datetime | None = None) -> DashboardSnapshot:
    """The newest `limit` signals matching `filters` (newest first) and the cursor
    the live client resumes from.

    The cursor is read *before* the rows and the rows are capped at it, so every
    matching signal with id <= cursor is either on the page or older than the page,
    and everything newer arrives through the live feed.
    """
    cursor = signal_max_id()
    event_cursor = SignalEvent.objects.aggregate(m=Max("id"))["m"] or 0
    rows = list(dashboard_signals(filters=filters).filter(id__lte=cursor)[:limit])
    return DashboardSnapshot(
        cursor=cursor,
        signals=signal_payloads(rows),
        activity=signal_activity_by_hour(now=now or timezone.now(), filters=filters, up_to_id=cursor),
        filters=filters,
        older=rows[-1].id if len(rows) == limit else None,
        event_cursor=event_cursor,
    )


def dashboard_history(*, filters: dict[str, str], before: int, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    """The page of matching signals just older than id `before`, newest first (keyset
    pagination on id, so pages never overlap or skip however many signals arrive).
    Returns (payloads, id to continue from or None at the end)."""
    rows = list(dashboard_signals(filters=filters).filter(id__lt=before)[:limit])
    return signal_payloads(rows), (rows[-1].id if len(rows) == limit else None)


def dashboard_filter_choices() -> dict[str, list[Any]]:
    """Values offered in the filter menus: markets, active instruments (symbol and
    market), known sources."""
    # Sources seen among recent signals: a DISTINCT over the whole permanent table
    # would scan all of it on every page load.
    recent = Signal.objects.order_by("-id").values_list("source", flat=True)[:RECENT_FOR_SOURCES]
    sources = sorted(set(recent))
    if "manual" not in sources:
        sources.insert(0, "manual")
    return {
        "markets": list(Market.values),
        "instruments": [
            {"symbol": symbol, "market": market}
            for symbol, market in Instrument.objects.filter(active=True).order_by("symbol").values_list("symbol", "market")
        ],
        "sources": sources,
        "outcomes": [(status, OUTCOME_LABELS.get(status, label)) for status, label in OutcomeStatus.choices],
    }


def dashboard_chart_symbol(*, preferred: list[str]) -> str | None:
    """The symbol the price chart opens on: the first of `preferred` (the filter's
    symbol, then the newest signals' symbols) that has candles, else the active
    instrument with the freshest candle, else None. Opening on a symbol without
    data (a forex pair on a Saturday) would greet the user with an empty chart."""
    newest: dict[str, int] = {}
    for instrument in Instrument.objects.filter(active=True).only("id", "symbol"):
        mark = minute_newest(instrument_id=instrument.id)
        if mark is not None:
            newest[instrument.symbol] = mark[0]
    for symbol in preferred:
        if symbol in newest:
            return symbol
    return max(newest, key=newest.get) if newest else None


def dashboard_prices(*, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """Latest price and its time for each known symbol that has one; symbols without
    data or unknown are left out (the table shows a dash, nothing is an error)."""
    prices: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        try:
            latest = latest_price(symbol=symbol)
        except UnknownSymbolError:
            continue
        if latest is not None:
            prices[latest.symbol] = {"price": decimal_str(latest.price), "ts_ms": latest.ts_ms}
    return prices


def dashboard_markets(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Feed status per market for the health panel: session open or closed (and the
    next open), the readiness state and its reason, and how old each followed
    symbol's newest data is (None: nothing stored yet)."""
    now = now or timezone.now()
    readiness = readiness_rows()
    markets = []
    for market in Market.values:
        session = market_session(market, now)
        row = readiness.get(market)
        symbols = []
        for instrument in feed_instruments(market=market):
            age = newest_candle_age_seconds(symbol=instrument.symbol, now=now)
            symbols.append({"symbol": instrument.symbol, "age_seconds": None if age is None else round(age, 1)})
        markets.append({
            "market": market, "open": session["open"], "next_open": session["next_open"],
            "state": row.state if row else None, "reason": row.reason if row else "", "symbols": symbols,
        })
    return markets
