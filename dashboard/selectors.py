"""Reads for the dashboard page: one consistent snapshot of the feed plus the small
aggregates its charts start from.

Why a snapshot with a cursor: the page hands the browser the highest signal id that
existed when the rows were read. The live client resumes from there, so a signal
committed between rendering and connecting is replayed by the server instead of
being lost (ids become visible in commit order, see signals.services).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from signals.models import Instrument, Market, Signal
from signals.selectors import signal_list, signal_max_id, signal_payloads

PAGE_FILTERS = ("market", "symbol", "source")
MAX_SOURCE_LENGTH = 64
ACTIVITY_HOURS = 24
RECENT_FOR_SOURCES = 2000


class FilterError(ValueError):
    """A filter value the page cannot use; `errors` maps field -> message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class DashboardSnapshot:
    cursor: int
    signals: list[dict[str, Any]]
    activity: list[dict[str, Any]]
    filters: dict[str, str] = field(default_factory=dict)


def dashboard_filters_clean(raw: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Normalise the page's query-string filters. Returns (filters, errors); a bad
    value is left out of `filters` and explained in `errors`, never a 500."""
    filters: dict[str, str] = {}
    errors: dict[str, str] = {}
    market = (raw.get("market") or "").strip().lower()
    if market:
        if market in Market.values:
            filters["market"] = market
        else:
            errors["market"] = f"Unknown market '{market[:20]}'. Choose one of: {', '.join(Market.values)}."
    symbol = (raw.get("symbol") or "").strip().upper()
    if symbol:
        if len(symbol) <= 32 and symbol.isalnum():
            filters["symbol"] = symbol
        else:
            errors["symbol"] = "A symbol is 1 to 32 letters or digits, like BTCUSDT."
    source = (raw.get("source") or "").strip()
    if source:
        if len(source) <= MAX_SOURCE_LENGTH:
            filters["source"] = source
        else:
            errors["source"] = f"A source name is at most {MAX_SOURCE_LENGTH} characters."
    return filters, errors


def signal_activity_by_hour(*, now: dt.datetime, hours: int = ACTIVITY_HOURS,
                            filters: dict[str, str] | None = None,
                            up_to_id: int | None = None) -> list[dict[str, Any]]:
    """Signals per hour over the last `hours`, split by direction, oldest hour first.
    Every hour is present (zero-filled) so the chart has no holes. `up_to_id` caps
    the count at a snapshot's cursor, so live arrivals after it are counted once."""
    start = (now - dt.timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    qs = signal_list(filters=filters)
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
            "hour": hour.isoformat().replace("+00:00", "Z"),
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
    rows = signal_list(filters=filters).filter(id__lte=cursor)[:limit]
    return DashboardSnapshot(
        cursor=cursor,
        signals=signal_payloads(rows),
        activity=signal_activity_by_hour(now=now or timezone.now(), filters=filters, up_to_id=cursor),
        filters=filters,
    )


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
    }
