"""Amendments: a publisher moves the stop, closes or cancels a published signal.

A signal never changes; each amendment is a new immutable SignalEvent. Amendments
and the outcome tracker serialize on `select_for_update` of the outcome row: an
amendment made after the tape closed the signal is refused with a clear message,
and a tape hit after an amendment is judged with the amendment in force (it counts
for trades after its own time). Rules are in docs/methodology.md.
"""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ..broadcast import event_broadcast_on_commit, outcome_broadcast_on_commit
from ..models import EventType, OutcomeStatus, Signal, SignalEvent, SignalOutcome
from ..prices import PriceError, decimal_str, price_parse
from ..selectors import stop_in_force
from .create import MAX_NOTE_LENGTH, SignalValidationError
from .outcomes import legs_normalize, legs_open
from .stats import stats_count_outcome


class AmendmentRefused(Exception):
    """The amendment is well-formed but not allowed now; `code` says why:
    `not_publisher`, `closed`, `close_pending` or `cancel_after_hit`."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


def _may_amend(signal: Signal, user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(user.is_staff or (signal.created_by_id is not None and signal.created_by_id == user.pk))


def _parse(event_type: Any, price: Any, reason: Any) -> tuple[Any, str]:
    errors: dict[str, list[str]] = {}
    if event_type not in EventType.values:
        errors["type"] = [f"Must be one of {', '.join(EventType.values)}."]
    parsed = None
    if event_type == EventType.MOVE_STOP:
        try:
            parsed = price_parse(price)
        except PriceError as exc:
            errors["price"] = [str(exc)]
    elif price not in (None, "") and event_type in EventType.values:
        errors["price"] = [f"Only move_stop takes a price; '{event_type}' closes at the next trade."]
    reason = "" if reason is None else reason
    if not isinstance(reason, str) or len(reason) > MAX_NOTE_LENGTH or "\x00" in reason:
        errors["reason"] = [f"Must be text of at most {MAX_NOTE_LENGTH} characters, without NUL."]
    if errors:
        raise SignalValidationError(errors)
    return parsed, reason


def _check_move_stop(signal: Signal, outcome: SignalOutcome, events: list[SignalEvent], price) -> None:
    """A moved stop only tightens (long: up, short: down) and stays short of the next
    open target, so the amendment can never add risk nor sit past the goal."""
    current = stop_in_force(signal, outcome, events)
    is_long = signal.direction == "long"
    if (price <= current) if is_long else (price >= current):
        where = "above" if is_long else "below"
        raise SignalValidationError({"price": [
            f"A stop only moves in the trade's favour: for a {signal.direction} it must be {where} "
            f"the stop in force ({decimal_str(current)})."]})
    legs = outcome.legs or legs_open(signal)
    next_target = next((leg["target"] for leg in legs if leg["status"] == OutcomeStatus.OPEN), None)
    if next_target is not None:
        target = price_parse(next_target)
        if (price >= target) if is_long else (price <= target):
            where = "below" if is_long else "above"
            raise SignalValidationError({"price": [
                f"For a {signal.direction} the stop must stay {where} the next open target ({next_target})."]})


def _cancel_outcome(signal: Signal, event: SignalEvent) -> None:
    legs = [{**leg, "status": OutcomeStatus.CANCELLED.value, "closed_at": event.created_at}
            for leg in legs_open(signal)]
    SignalOutcome.objects.filter(signal_id=signal.pk, status=OutcomeStatus.OPEN).update(
        status=OutcomeStatus.CANCELLED, closed_at=event.created_at, legs=legs_normalize(legs))


def signal_event_create(*, signal_id: int, event_type: str, price: Any = None, reason: str = "",
                        created_by) -> SignalEvent:
    """Record one amendment and broadcast it on commit (`signal_event` frame and
    `amendment_published`). A cancel also closes the outcome as `cancelled` at once
    (nothing was reached, so no trade can decide it); move_stop and close are
    applied by the outcome tracker from the next trade on.

    Raises SignalValidationError (field errors; unknown signal under `signal_id`) or
    AmendmentRefused (not the publisher or staff, closed signal, a close already
    pending, cancel after a target or the stop was reached).
    """
    parsed_price, reason = _parse(event_type, price, reason)
    with transaction.atomic():
        outcome = (SignalOutcome.objects.select_for_update().select_related("signal")
                   .filter(signal_id=signal_id).first())
        if outcome is None:
            raise SignalValidationError({"signal_id": [f"No signal #{signal_id}."]})
        signal = outcome.signal
        if not _may_amend(signal, created_by):
            raise AmendmentRefused("Only the signal's publisher or staff may amend it.", code="not_publisher")
        if outcome.status != OutcomeStatus.OPEN:
            raise AmendmentRefused(
                f"Signal #{signal_id} is already closed ({outcome.status}): amendments are only possible "
                "while it is open.", code="closed")
        events = list(signal.events.order_by("id"))
        if any(e.type == EventType.CLOSE for e in events):
            raise AmendmentRefused(
                f"Signal #{signal_id} is being closed at the next trade: no further amendment is possible.",
                code="close_pending")
        if event_type == EventType.CANCEL and any(leg.get("status") != OutcomeStatus.OPEN for leg in outcome.legs):
            raise AmendmentRefused(
                f"Signal #{signal_id} already reached a target or its stop: cancel is only possible before "
                "that; use close instead.", code="cancel_after_hit")
        if event_type == EventType.MOVE_STOP:
            _check_move_stop(signal, outcome, events, parsed_price)
        event = SignalEvent.objects.create(
            signal=signal, type=event_type, price=parsed_price, reason=reason, created_at=timezone.now(),
            created_by=created_by,
        )
        event_broadcast_on_commit(event)
        if event_type == EventType.CANCEL:
            _cancel_outcome(signal, event)
            cancelled = SignalOutcome.objects.select_related("signal").get(signal_id=signal_id)
            stats_count_outcome(signal, cancelled)
            outcome_broadcast_on_commit(cancelled)
    return event
