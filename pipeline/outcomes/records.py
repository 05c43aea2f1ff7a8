"""R figures of an outcome state, and its round trip through SignalOutcome's columns.

Pure like the engine: the live tracker persists `outcome_record(...)` through
`signals.services.signal_outcome_progress` and rebuilds the very same state with
`state_from_record(...)` after a restart, so a restart changes nothing a
continuous run would have decided.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Mapping, Sequence

from .engine import CANCELLED, OPEN, Leg, Levels, OutcomeState, state_new

R_QUANTUM = Decimal("0.0001")
# r columns are NUMERIC(12, 4); a stop a hair from the entry could overflow them.
_MAX_R = Decimal("99999999.9999")


def _clamp(value: Decimal) -> Decimal:
    return max(-_MAX_R, min(_MAX_R, value))


def _raw_r(levels: Levels, exit_price: Decimal) -> Decimal:
    move = exit_price - levels.entry if levels.is_long else levels.entry - exit_price
    return move / levels.risk


def leg_r(levels: Levels, leg: Leg) -> Decimal | None:
    """A closed leg's R against the original stop, rounded to 4 places."""
    return None if leg.exit_price is None else _clamp(_raw_r(levels, leg.exit_price)).quantize(R_QUANTUM)


def r_multiple(levels: Levels, state: OutcomeState) -> Decimal | None:
    """sum(portion x leg R) over the legs (unrounded legs), rounded to 4 places; None
    while open, for a cancelled signal, or when a leg has no exit price."""
    if state.status in (OPEN, CANCELLED) or any(leg.exit_price is None for leg in state.legs):
        return None
    total = sum((leg.portion * _raw_r(levels, leg.exit_price) for leg in state.legs), Decimal(0))
    return _clamp(total).quantize(R_QUANTUM)


def excursions(levels: Levels, state: OutcomeState) -> tuple[Decimal | None, Decimal | None]:
    """(MFE, MAE) in R against the original stop, both >= 0; None before any price."""
    if state.best is None or state.worst is None:
        return None, None
    sign = 1 if levels.is_long else -1
    mfe = max(Decimal(0), sign * (state.best - levels.entry) / levels.risk)
    mae = max(Decimal(0), sign * (levels.entry - state.worst) / levels.risk)
    return _clamp(mfe).quantize(R_QUANTUM), _clamp(mae).quantize(R_QUANTUM)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _t(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _pt(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def legs_json(levels: Levels, state: OutcomeState) -> list[dict[str, Any]]:
    """The contract's legs: [{"target", "portion", "status", "closed_at", "exit_price", "r"}]."""
    return [
        {"target": _s(leg.target), "portion": _s(leg.portion), "status": leg.status,
         "closed_at": _t(leg.closed_at), "exit_price": _s(leg.exit_price), "r": _s(leg_r(levels, leg))}
        for leg in state.legs
    ]


def outcome_record(levels: Levels, state: OutcomeState) -> dict[str, Any]:
    """Keyword arguments for `signal_outcome_progress` (all but signal_id)."""
    mfe, mae = excursions(levels, state)
    return {
        "legs": legs_json(levels, state),
        "stop_price": state.effective_stop,
        "evaluated_until": state.evaluated_until,
        "state": {
            "stop": _s(state.stop), "pending_stop": _s(state.pending_stop),
            "close_after": _t(state.close_after), "best": _s(state.best), "worst": _s(state.worst),
            "last_price": _s(state.last_price),
        },
        "mfe_r": mfe,
        "mae_r": mae,
        "status": state.status,
        "closed_at": state.closed_at,
        "exit_price": state.exit_price,
        "r_multiple": r_multiple(levels, state),
    }


def state_from_record(
    levels: Levels,
    *,
    status: str,
    legs: Sequence[Mapping[str, Any]] | None,
    state: Mapping[str, Any] | None,
    evaluated_until: dt.datetime | None,
    closed_at: dt.datetime | None = None,
    exit_price: Decimal | None = None,
) -> OutcomeState:
    """The engine state a stored outcome row describes (a row the tracker never wrote,
    legs [], gives the fresh state)."""
    fresh = state_new(levels)
    if not legs:
        fresh.status, fresh.closed_at, fresh.exit_price = status, closed_at, exit_price
        fresh.evaluated_until = evaluated_until
        return fresh
    book = dict(state or {})
    fresh.legs = [
        Leg(target=Decimal(str(leg["target"])), portion=Decimal(str(leg["portion"])), status=leg["status"],
            closed_at=_pt(leg.get("closed_at")), exit_price=_d(leg.get("exit_price")))
        for leg in legs
    ]
    fresh.stop = _d(book.get("stop")) or levels.stop
    fresh.pending_stop = _d(book.get("pending_stop"))
    fresh.close_after = _pt(book.get("close_after"))
    fresh.best, fresh.worst = _d(book.get("best")), _d(book.get("worst"))
    fresh.last_price = _d(book.get("last_price"))
    fresh.status, fresh.closed_at, fresh.exit_price = status, closed_at, exit_price
    fresh.evaluated_until = evaluated_until
    return fresh
