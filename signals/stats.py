"""Statistics for /api/stats/ and pipeline_status (reads only).

Per-source figures come from the summary tables that every write keeps current
(signals.services.stats), so a request reads a few rows per source and day, never
the signals table; the 24-hour counts use the created_at index. What each figure
means is defined in docs/methodology.md. Market-data counts belong to the pipeline:
the caller passes them in (signals never imports pipeline).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum
from django.utils import timezone

from .models import Signal, SourceDayLegStats, SourceDayStats

DEFAULT_DAYS = 30
MAX_DAYS = 3650
_SUMMED = ("signals", "closed", "wins", "losses", "breakeven", "expired", "cancelled", "r_sum", "excursions",
           "mfe_sum", "mae_sum")


def _ratio(numerator: Any, denominator: Any, places: int = 4) -> float | None:
    if not denominator:
        return None
    return round(float(Decimal(numerator) / Decimal(denominator)), places)


def _figures(row: dict[str, Any], legs: list[dict[str, Any]]) -> dict[str, Any]:
    closed = row["closed"]
    return {
        "signals": row["signals"],
        "open": row["signals"] - closed - row["cancelled"],
        "closed": closed,
        "wins": row["wins"],
        "losses": row["losses"],
        "breakeven": row["breakeven"],
        "expired": row["expired"],
        "cancelled": row["cancelled"],
        "win_rate": _ratio(row["wins"], closed),
        "avg_r": _ratio(row["r_sum"], closed),
        "avg_mfe_r": _ratio(row["mfe_sum"], row["excursions"]),
        "avg_mae_r": _ratio(row["mae_sum"], row["excursions"]),
        "legs": [{"target": leg["target"], "eligible": leg["eligible"], "reached": leg["reached"],
                  "reached_share": _ratio(leg["reached"], leg["eligible"]),
                  "avg_r": _ratio(leg["r_sum"], leg["eligible"])} for leg in legs],
    }


def _per_source(since: dt.date | None) -> dict[str, dict[str, Any]]:
    days = SourceDayStats.objects.order_by()
    legs = SourceDayLegStats.objects.order_by()
    if since is not None:
        days, legs = days.filter(day__gte=since), legs.filter(day__gte=since)
    rows = days.values("source").annotate(**{f: Sum(f) for f in _SUMMED})
    leg_rows = legs.values("source", "target").annotate(
        eligible=Sum("eligible"), reached=Sum("reached"), r_sum=Sum("r_sum")).order_by("source", "target")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for leg in leg_rows:
        by_source.setdefault(leg["source"], []).append(leg)
    return {row["source"]: _figures(row, by_source.get(row["source"], [])) for row in rows}


def stats_by_source(*, days: int = DEFAULT_DAYS, now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """{source: {"all_time": figures, "last_days": figures}}; the last N days are the
    N UTC calendar days ending today, by the day each signal was created."""
    now = now or timezone.now()
    since = now.astimezone(dt.timezone.utc).date() - dt.timedelta(days=days - 1)
    all_time, recent = _per_source(None), _per_source(since)
    empty = _figures(dict.fromkeys(_SUMMED, 0), [])
    return {source: {"all_time": figures, "last_days": recent.get(source, empty)}
            for source, figures in sorted(all_time.items())}


def stats_24h(*, now: dt.datetime | None = None, market_updates: dict[str, int] | None = None) -> dict[str, Any]:
    """Counts over the last 24 hours (signals by market and source, strategy
    triggers, and the market updates the caller measured), plus the all-time win
    rate per source (docs/methodology.md)."""
    now = now or timezone.now()
    since = now - dt.timedelta(hours=24)
    recent = Signal.objects.filter(created_at__gte=since).order_by()
    by_market = dict(recent.values_list("market").annotate(n=Count("id")).values_list("market", "n"))
    by_source = dict(recent.values_list("source").annotate(n=Count("id")).values_list("source", "n"))
    win_rate = {source: {key: figures[key] for key in ("wins", "losses", "open", "win_rate")}
                for source, figures in _per_source(None).items()}
    updates = market_updates or {}
    return {
        "window": {"from": since.isoformat(), "to": now.isoformat()},
        "signals": {"total": sum(by_market.values()), "by_market": by_market, "by_source": by_source},
        "triggers": {"total": sum(v for k, v in by_source.items() if k != "manual"),
                     "by_source": {k: v for k, v in by_source.items() if k != "manual"}},
        "market_updates": {"total": sum(updates.values()) if market_updates is not None else None,
                           "by_market": updates},
        "win_rate_by_source": dict(sorted(win_rate.items())),
    }


def stats_report(*, days: int = DEFAULT_DAYS, now: dt.datetime | None = None,
                 market_updates: dict[str, int] | None = None) -> dict[str, Any]:
    """The whole /api/stats/ body: the 24-hour counts plus `days` and `per_source`."""
    now = now or timezone.now()
    return {**stats_24h(now=now, market_updates=market_updates), "days": days,
            "per_source": stats_by_source(days=days, now=now)}
