"""Reads. Plain functions returning querysets or plain data; views and consumers
call these instead of touching the ORM themselves."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from django.db.models import Max, QuerySet

from .models import Signal, SignalOutcome

LIST_FILTERS = ("symbol", "market", "source", "direction")


def decimal_str(value: Decimal | None) -> str | None:
    """Decimals as plain strings without the column's trailing zeros ("65000.5")."""
    if value is None:
        return None
    return format(value.normalize(), "f")


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def outcome_payload(outcome: SignalOutcome | None) -> dict[str, Any]:
    if outcome is None:
        return {"status": "open", "closed_at": None, "exit_price": None, "r_multiple": None}
    return {
        "status": outcome.status,
        "closed_at": _iso(outcome.closed_at),
        "exit_price": decimal_str(outcome.exit_price),
        "r_multiple": decimal_str(outcome.r_multiple),
    }


def signal_payload(signal: Signal) -> dict[str, Any]:
    """The public JSON shape of a signal (API, WebSocket and SSE all use this)."""
    try:
        outcome = signal.outcome
    except SignalOutcome.DoesNotExist:
        outcome = None
    return {
        "id": signal.id,
        "symbol": signal.symbol,
        "market": signal.market,
        "direction": signal.direction,
        "entry_price": decimal_str(signal.entry_price),
        "stop_loss": decimal_str(signal.stop_loss),
        "take_profit": decimal_str(signal.take_profit),
        "confidence": signal.confidence,
        "timeframe": signal.timeframe,
        "source": signal.source,
        "note": signal.note,
        "created_at": _iso(signal.created_at),
        "expires_at": _iso(signal.expires_at),
        "outcome": outcome_payload(outcome),
    }


def signal_list(*, filters: dict[str, str] | None = None) -> QuerySet[Signal]:
    """Signals newest first, with the contract's equality filters applied."""
    qs = Signal.objects.select_related("outcome").order_by("-id")
    for key, value in (filters or {}).items():
        if key in LIST_FILTERS and value:
            if "\x00" in value:
                # PostgreSQL text cannot hold NUL, so nothing matches; asking would be a DataError.
                return qs.none()
            qs = qs.filter(**{key: value.upper() if key == "symbol" else value})
    return qs


def signal_after(*, after_id: int, filters: dict[str, str] | None = None, up_to_id: int | None = None,
                 limit: int | None = None) -> QuerySet[Signal]:
    """Signals with id > after_id (and <= up_to_id), oldest first: the catch-up read."""
    qs = signal_list(filters=filters).filter(id__gt=after_id).order_by("id")
    if up_to_id is not None:
        qs = qs.filter(id__lte=up_to_id)
    if limit is not None:
        qs = qs[:limit]
    return qs


def signal_max_id() -> int:
    """The highest committed signal id (0 when there are none)."""
    return Signal.objects.aggregate(m=Max("id"))["m"] or 0


def signal_payloads(signals: Iterable[Signal]) -> list[dict[str, Any]]:
    return [signal_payload(s) for s in signals]
