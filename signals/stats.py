"""24-hour statistics for /api/stats/ (reads only)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from .models import OutcomeStatus, Signal


def _market_updates_since(since: dt.datetime) -> dict[str, int]:
    """Candle updates per market, from the pipeline."""
    from pipeline.selectors import market_updates_since

    return market_updates_since(since=since)


def stats_24h(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Counts over the last 24 hours: signals by market and source, strategy
    triggers, market updates, and the all-time win rate per source (tp_hit among
    closed tp/sl outcomes)."""
    now = now or timezone.now()
    since = now - dt.timedelta(hours=24)
    recent = Signal.objects.filter(created_at__gte=since)
    by_market = dict(recent.values_list("market").annotate(n=Count("id")).values_list("market", "n"))
    by_source = dict(recent.values_list("source").annotate(n=Count("id")).values_list("source", "n"))
    wins = (
        Signal.objects.values("source")
        .annotate(
            wins=Count("id", filter=Q(outcome__status=OutcomeStatus.TP_HIT)),
            losses=Count("id", filter=Q(outcome__status=OutcomeStatus.SL_HIT)),
            open=Count("id", filter=Q(outcome__status=OutcomeStatus.OPEN)),
        )
        .order_by("source")
    )
    win_rate = {
        row["source"]: {
            "wins": row["wins"],
            "losses": row["losses"],
            "open": row["open"],
            "win_rate": round(row["wins"] / (row["wins"] + row["losses"]), 4) if row["wins"] + row["losses"] else None,
        }
        for row in wins
    }
    updates = _market_updates_since(since)
    return {
        "window": {"from": since.isoformat(), "to": now.isoformat()},
        "signals": {"total": sum(by_market.values()), "by_market": by_market, "by_source": by_source},
        "triggers": {"total": sum(v for k, v in by_source.items() if k != "manual"),
                     "by_source": {k: v for k, v in by_source.items() if k != "manual"}},
        "market_updates": {"total": sum(updates.values()), "by_market": updates},
        "win_rate_by_source": win_rate,
    }
