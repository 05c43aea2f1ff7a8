"""Reads. Plain functions returning querysets or plain data; views and consumers
call these instead of touching the ORM themselves."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from django.db.models import Max, Prefetch, QuerySet

from .models import EventType, OutcomeStatus, Signal, SignalEvent, SignalOutcome
from .prices import decimal_str
from .times import iso_utc  # noqa: F401 - re-exported: callers import it from here

__all__ = ["decimal_str"]  # re-exported: pipeline renders prices with the same rule

LIST_FILTERS = ("symbol", "market", "source", "direction")
OUTCOME_FILTER_VALUES = tuple(OutcomeStatus.values)



def _legs(outcome: SignalOutcome | None, signal: Signal | None) -> list[dict[str, Any]]:
    """Stored legs, or (before the tracker's first write) one per target, all taking
    the outcome's status."""
    if outcome is not None and outcome.legs:
        return outcome.legs
    if signal is None:
        return []
    status = outcome.status if outcome is not None else OutcomeStatus.OPEN.value
    closed = outcome is not None and status != OutcomeStatus.OPEN
    return [{"target": t["price"], "portion": t["portion"], "status": status,
             "closed_at": iso_utc(outcome.closed_at) if closed else None,
             "exit_price": decimal_str(outcome.exit_price) if closed else None,
             "r": decimal_str(outcome.r_multiple) if closed else None} for t in signal.target_ladder]


def outcome_payload(outcome: SignalOutcome | None, signal: Signal | None = None) -> dict[str, Any]:
    """An outcome's public JSON (with `legs` when its signal is known)."""
    if signal is None and outcome is not None:
        signal = outcome.signal
    if outcome is None:
        return {"status": "open", "closed_at": None, "exit_price": None, "r_multiple": None,
                "legs": _legs(None, signal), "stop_price": None, "mfe_r": None, "mae_r": None}
    return {
        "status": outcome.status,
        "closed_at": iso_utc(outcome.closed_at),
        "exit_price": decimal_str(outcome.exit_price),
        "r_multiple": decimal_str(outcome.r_multiple),
        "legs": _legs(outcome, signal),
        # The stop the tracker holds in force (original, or moved by the rule or an
        # amendment it applied); a frame after a target hit carries the moved stop.
        "stop_price": decimal_str(outcome.stop_price),
        "mfe_r": decimal_str(outcome.mfe_r),
        "mae_r": decimal_str(outcome.mae_r),
    }


def event_payload(event: SignalEvent) -> dict[str, Any]:
    """An amendment's public JSON (the `event` of a `signal_event` frame)."""
    return {
        "id": event.id,
        "type": event.type,
        "price": decimal_str(event.price),
        "reason": event.reason,
        "created_at": iso_utc(event.created_at),
        "created_by": event.created_by.get_username() if event.created_by_id else None,
    }


def stop_in_force(signal: Signal, outcome: SignalOutcome | None, events: Iterable[SignalEvent]) -> Decimal:
    """The stop in force now: the tracker's (original, or moved by the rule or an
    amendment it applied), unless a move_stop amendment came after the tracker's
    last evaluation: then that amendment's price."""
    stop = outcome.stop_price if outcome is not None and outcome.stop_price is not None else signal.stop_loss
    applied_until = outcome.evaluated_until if outcome is not None else None
    for event in events:
        if event.type == EventType.MOVE_STOP and (applied_until is None or event.created_at > applied_until):
            stop = event.price
    return stop


def _trigger(signal: Signal) -> dict[str, Any] | None:
    if signal.trigger_config_id is None:
        return None
    return {"config_id": signal.trigger_config_id, "timeframe": signal.trigger_timeframe,
            "candle_open_time": iso_utc(signal.trigger_candle_open_time)}


def signal_payload(signal: Signal) -> dict[str, Any]:
    """The public JSON shape of a signal (API, WebSocket and SSE all use this)."""
    try:
        outcome = signal.outcome
    except SignalOutcome.DoesNotExist:
        outcome = None
    events = list(signal.events.all())
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
        "created_at": iso_utc(signal.created_at),
        "expires_at": iso_utc(signal.expires_at),
        "targets": signal.target_ladder,
        "stop_rule": signal.stop_rule or {"type": "fixed"},
        "trigger": _trigger(signal),
        "effective_stop": decimal_str(stop_in_force(signal, outcome, events)),
        "events": [event_payload(e) for e in events],
        "outcome": outcome_payload(outcome, signal),
    }


def _with_events(qs: QuerySet[Signal]) -> QuerySet[Signal]:
    return qs.prefetch_related(Prefetch("events", queryset=SignalEvent.objects.select_related("created_by")))


def signal_list(*, filters: dict[str, str] | None = None) -> QuerySet[Signal]:
    """Signals newest first, with the contract's equality filters applied (plus
    `outcome`: an outcome status; the door rejects unknown ones)."""
    qs = _with_events(Signal.objects.select_related("outcome")).order_by("-id")
    for key, value in (filters or {}).items():
        if (key in LIST_FILTERS or key == "outcome") and value:
            if "\x00" in value:
                # PostgreSQL text cannot hold NUL, so nothing matches; asking would be a DataError.
                return qs.none()
            if key == "outcome":
                qs = qs.filter(outcome__status=value)
            else:
                qs = qs.filter(**{key: value.upper() if key == "symbol" else value})
    return qs


def signal_events(*, signal_id: int, after_id: int = 0) -> QuerySet[SignalEvent]:
    """A signal's amendments, oldest first."""
    return (SignalEvent.objects.select_related("created_by")
            .filter(signal_id=signal_id, id__gt=after_id).order_by("id"))


def events_after(*, after_event_id: int, limit: int | None = None) -> QuerySet[SignalEvent]:
    """Every amendment with id > after_event_id, in id order (replay on resume)."""
    qs = (SignalEvent.objects.select_related("created_by", "signal")
          .filter(id__gt=after_event_id).order_by("id"))
    return qs[:limit] if limit is not None else qs


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
