"""Writes to a signal's outcome: the only mutable row of a signal, forward only.

The outcome tracker (pipeline.outcomes) computes legs, stop and status with its pure
engine and hands them here; amendments (signals.services.events) take the same row
lock, so a tape hit and an amendment are serialized on `select_for_update` of the
outcome row: whichever commits first wins and the other sees the result.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..broadcast import outcome_broadcast_on_commit
from ..models import Direction, OutcomeStatus, Signal, SignalOutcome
from ..prices import decimal_str, price_quantize
from ..selectors import iso_utc
from .stats import stats_count_outcome

# r_multiple is NUMERIC(12, 4); a stop a hair away from the entry could overflow it.
_MAX_R_MULTIPLE = Decimal("99999999.9999")
_R_QUANTUM = Decimal("0.0001")
_LEG_KEYS = ("target", "portion", "status", "closed_at", "exit_price", "r")


def r_clamp(value: Any) -> Decimal | None:
    """An R value as the NUMERIC(12, 4) columns store it (None stays None)."""
    if value is None:
        return None
    number = Decimal(str(value))
    return max(-_MAX_R_MULTIPLE, min(_MAX_R_MULTIPLE, number)).quantize(_R_QUANTUM)


def r_of(*, direction: str, entry: Decimal, stop: Decimal, exit_price: Decimal) -> Decimal:
    """(exit - entry) / (entry - stop) for a long, mirrored for a short, 4 places."""
    risk = abs(entry - stop)
    move = exit_price - entry
    if direction == Direction.SHORT:
        move = -move
    return r_clamp(move / risk) if risk else Decimal("0")


def _iso(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else iso_utc(value)


def legs_normalize(legs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Legs in their stored JSON form: strings for decimals and times, known keys only."""
    stored = []
    for leg in legs:
        status = leg.get("status", OutcomeStatus.OPEN)
        if status not in OutcomeStatus.values:
            raise ValueError(f"Not a leg status: {status!r}")
        exit_price = leg.get("exit_price")
        stored.append({
            "target": decimal_str(Decimal(str(leg["target"]))),
            "portion": decimal_str(Decimal(str(leg["portion"]))),
            "status": str(status),
            "closed_at": _iso(leg.get("closed_at")),
            "exit_price": None if exit_price is None else decimal_str(price_quantize(exit_price)),
            "r": None if leg.get("r") is None else decimal_str(r_clamp(leg["r"])),
        })
    return stored


def signal_outcome_close(
    *,
    signal_id: int,
    status: str,
    exit_price: Decimal,
    closed_at: dt.datetime | None = None,
) -> SignalOutcome | None:
    """Move an open outcome to a closed status, once, every leg with it. Returns it,
    or None if it was already closed (safe to run twice: the conditional UPDATE only
    matches `open`)."""
    if status not in (OutcomeStatus.TP_HIT, OutcomeStatus.SL_HIT, OutcomeStatus.EXPIRED):
        raise ValueError(f"Not a closing status: {status!r}")
    exit_price = price_quantize(exit_price)
    closed_at = closed_at or timezone.now()
    with transaction.atomic():
        signal = Signal.objects.get(pk=signal_id)
        r_multiple = r_of(direction=signal.direction, entry=signal.entry_price, stop=signal.stop_loss,
                          exit_price=exit_price)
        legs = [{**leg, "status": status, "closed_at": closed_at, "exit_price": exit_price, "r": r_multiple}
                for leg in legs_open(signal)]
        updated = SignalOutcome.objects.filter(signal_id=signal_id, status=OutcomeStatus.OPEN).update(
            status=status, closed_at=closed_at, exit_price=exit_price, r_multiple=r_multiple,
            legs=legs_normalize(legs),
        )
        if not updated:
            return None
        outcome = SignalOutcome.objects.select_related("signal").get(signal_id=signal_id)
        stats_count_outcome(signal, outcome)
        outcome_broadcast_on_commit(outcome)
    return outcome


def legs_open(signal: Signal) -> list[dict[str, Any]]:
    """One open leg per target of the signal's ladder (the state before any trade)."""
    return [{"target": t["price"], "portion": t["portion"], "status": OutcomeStatus.OPEN.value,
             "closed_at": None, "exit_price": None, "r": None} for t in signal.target_ladder]


def signal_outcome_progress(
    *,
    signal_id: int,
    legs: list[dict[str, Any]],
    stop_price: Any,
    evaluated_until: dt.datetime,
    state: dict[str, Any],
    mfe_r: Any,
    mae_r: Any,
    status: str = OutcomeStatus.OPEN,
    closed_at: dt.datetime | None = None,
    exit_price: Any = None,
    r_multiple: Any = None,
) -> SignalOutcome | None:
    """Record the tracker's progress on an OPEN outcome (conditional update).

    Returns the updated outcome, or None when it is already closed or when a newer
    evaluation was already recorded (`evaluated_until` only moves forward, so two
    trackers racing cannot move it back). Broadcasts an `outcome` frame and
    `outcome_decided` on commit when the status or any leg's status changed, and
    the frame alone when only the stop in force moved (a trailing stop: the tracker
    writes such moves at most every few seconds), so charts show the stop in force.
    """
    if status not in OutcomeStatus.values:
        raise ValueError(f"Not an outcome status: {status!r}")
    if status != OutcomeStatus.OPEN and closed_at is None:
        raise ValueError("A closed outcome needs closed_at.")
    values = {
        "legs": legs_normalize(legs),
        "stop_price": None if stop_price is None else price_quantize(stop_price),
        "evaluated_until": evaluated_until,
        "state": state,
        "mfe_r": r_clamp(mfe_r),
        "mae_r": r_clamp(mae_r),
        "status": status,
        "closed_at": closed_at,
        "exit_price": None if exit_price is None else price_quantize(exit_price),
        "r_multiple": r_clamp(r_multiple),
    }
    with transaction.atomic():
        current = (SignalOutcome.objects.select_for_update().select_related("signal")
                   .filter(signal_id=signal_id, status=OutcomeStatus.OPEN).first())
        if current is None:
            return None
        if current.evaluated_until is not None and evaluated_until < current.evaluated_until:
            return None
        before = [leg.get("status") for leg in current.legs] or [OutcomeStatus.OPEN] * len(values["legs"])
        changed = status != OutcomeStatus.OPEN or before != [leg["status"] for leg in values["legs"]]
        stop_moved = current.stop_price != values["stop_price"]
        SignalOutcome.objects.filter(signal_id=signal_id, status=OutcomeStatus.OPEN).update(**values)
        for field, value in values.items():
            setattr(current, field, value)
        if status != OutcomeStatus.OPEN:
            stats_count_outcome(current.signal, current)
        if changed or stop_moved:
            outcome_broadcast_on_commit(current, decided=changed)
    return current
