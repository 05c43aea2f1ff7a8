"""The outcome rule book, as pure functions over Decimal prices (no ORM, no I/O).

One implementation decides every signal, whether the prices come from the live
trade stream (pipeline.outcomes.tracker), from 1m candles for time the feed did not
stream, or from stored candles in a backtest, so a backtest scores a strategy
exactly as the live system would have.

Usage::

    levels = levels_build(direction="long", entry=..., stop=..., take_profit=...,
                          targets=[{"price": "101", "portion": "0.5"}, ...],
                          stop_rule={"type": "breakeven", "after_target": 1},
                          created_at=..., expires_at=None)
    state = state_new(levels)
    changed = apply_trade(levels, state, price=Decimal("101.5"), at=trade_time)
    changed = apply_candle(levels, state, open_time=..., open=..., high=..., low=...,
                           close=..., end=...)
    changed = apply_event(levels, state, kind="move_stop", at=..., price=...)
    changed = apply_expiry(levels, state)          # at or after expires_at

`pipeline.outcomes.records` turns a state into R figures and SignalOutcome columns
and back.

Each `apply_*` mutates `state` in place and returns True when something worth
persisting changed (a leg closed, the stop moved, the outcome closed).

The rules (docs/methodology.md states them for users):
- Only trades strictly after `created_at` count; an amendment counts for trades
  strictly after its own time.
- Trade by trade: a `close` amendment waiting for the next trade closes every open
  leg at that trade's price (leg status `closed`); otherwise the stop in force is
  checked first (long: price <= stop) and closes every open leg at the trade's
  price (`sl_hit`); otherwise every target the price reaches (long: price >=
  target), in order, closes its leg at the trade's price (`tp_hit`).
- A stop rule's move (breakeven after target k -> entry; trail_targets: after target
  k -> target k-1, entry after the first; trailing distance_pct: this trade's price
  minus/plus the distance) takes effect from the NEXT trade and never loosens the
  stop. A `move_stop` amendment sets the stop as given.
- A candle (time not streamed, backtests) is its open price as a first trade, then
  the rest of its range with the order unknown: the stop first, exiting AT its
  level, then targets, each exiting at its level. So a candle reaching both counts
  as the stop; a candle opening past a level (a gap) exits at the open.
- Past `expires_at` with legs open: those legs are `expired` at the last price
  before expiry.
- Leg R = (exit - entry) / (entry - original stop) for long, mirrored for short;
  r_multiple = sum(portion x leg R), rounded to 4 places. Status: `tp_hit` when
  every leg hit a target, `sl_hit` when the stop closed what was left, `closed` /
  `cancelled` for amendments, `expired`.
- MFE / MAE: the most favourable / adverse price seen after creation while open,
  in R against the original stop, as non-negative numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

LONG, SHORT = "long", "short"
OPEN, TP_HIT, SL_HIT, CLOSED, CANCELLED, EXPIRED = "open", "tp_hit", "sl_hit", "closed", "cancelled", "expired"
FIXED, BREAKEVEN, TRAIL_TARGETS, TRAILING = "fixed", "breakeven", "trail_targets", "trailing"
MOVE_STOP, CLOSE, CANCEL = "move_stop", "close", "cancel"

# Prices are stored as NUMERIC(24, 10): a computed stop (trailing) is rounded the same
# way so a state rebuilt from the database equals the one kept in memory.
PRICE_QUANTUM = Decimal("1e-10")
_HUNDRED = Decimal(100)


class EngineInputError(ValueError):
    """Levels, a stop rule or an amendment the engine cannot apply."""


@dataclass(frozen=True, slots=True)
class StopRule:
    type: str = FIXED
    after_target: int | None = None          # breakeven: after this many targets
    distance_pct: Decimal | None = None      # trailing: percent of the trade's price

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "StopRule":
        data = data or {}
        kind = data.get("type", FIXED)
        if kind == FIXED:
            return cls()
        if kind == BREAKEVEN:
            after = int(data.get("after_target", 1))
            if after < 1:
                raise EngineInputError("breakeven after_target must be >= 1")
            return cls(type=BREAKEVEN, after_target=after)
        if kind == TRAIL_TARGETS:
            return cls(type=TRAIL_TARGETS)
        if kind == TRAILING:
            distance = Decimal(str(data.get("distance_pct")))
            if not distance.is_finite() or not 0 < distance < _HUNDRED:
                raise EngineInputError("trailing distance_pct must be between 0 and 100")
            return cls(type=TRAILING, distance_pct=distance)
        raise EngineInputError(f"unknown stop rule {kind!r}")


@dataclass(frozen=True, slots=True)
class Levels:
    """What a signal published: direction, entry, original stop, ladder, rule, times."""

    direction: str
    entry: Decimal
    stop: Decimal
    targets: tuple[tuple[Decimal, Decimal], ...]   # (price, portion), nearest first
    stop_rule: StopRule
    created_at: dt.datetime
    expires_at: dt.datetime | None = None

    @property
    def is_long(self) -> bool:
        return self.direction == LONG

    @property
    def risk(self) -> Decimal:
        return abs(self.entry - self.stop)


@dataclass(slots=True)
class Leg:
    target: Decimal
    portion: Decimal
    status: str = OPEN
    closed_at: dt.datetime | None = None
    exit_price: Decimal | None = None


@dataclass(slots=True)
class OutcomeState:
    legs: list[Leg]
    stop: Decimal                              # in force for the next trade
    pending_stop: Decimal | None = None        # a rule's move, in force from the trade after
    close_after: dt.datetime | None = None     # a close amendment waiting for the next trade
    status: str = OPEN
    closed_at: dt.datetime | None = None
    exit_price: Decimal | None = None
    best: Decimal | None = None                # most favourable price seen after creation
    worst: Decimal | None = None               # most adverse price seen after creation
    last_price: Decimal | None = None          # last price applied (expiry exits here)
    evaluated_until: dt.datetime | None = None

    @property
    def effective_stop(self) -> Decimal:
        """The stop any future trade meets (a pending rule move included)."""
        return self.stop if self.pending_stop is None else self.pending_stop


def _dec(value: Any) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite() or number <= 0:
        raise EngineInputError(f"not a positive price: {value!r}")
    return number


def levels_build(
    *,
    direction: str,
    entry: Any,
    stop: Any,
    take_profit: Any = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    stop_rule: Mapping[str, Any] | None = None,
    created_at: dt.datetime,
    expires_at: dt.datetime | None = None,
) -> Levels:
    """Levels from a signal's published fields (targets as stored: [{"price", "portion"}];
    absent or empty means one target at take_profit). Raises EngineInputError."""
    if direction not in (LONG, SHORT):
        raise EngineInputError(f"direction must be long or short, not {direction!r}")
    entry_d, stop_d = _dec(entry), _dec(stop)
    if targets:
        ladder = tuple((_dec(t["price"]), _dec(t["portion"])) for t in targets)
    elif take_profit is not None:
        ladder = ((_dec(take_profit), Decimal(1)),)
    else:
        raise EngineInputError("a take-profit or a target ladder is required")
    is_long = direction == LONG
    if (stop_d >= entry_d) if is_long else (stop_d <= entry_d):
        raise EngineInputError("the stop must be on the losing side of the entry")
    previous = entry_d
    for price, _ in ladder:
        if (price <= previous) if is_long else (price >= previous):
            raise EngineInputError("targets must lie beyond the entry, nearest first")
        previous = price
    return Levels(direction=direction, entry=entry_d, stop=stop_d, targets=ladder,
                  stop_rule=StopRule.from_json(stop_rule), created_at=created_at, expires_at=expires_at)


def state_new(levels: Levels) -> OutcomeState:
    """The state of a signal nothing has touched yet: every leg open, original stop."""
    return OutcomeState(legs=[Leg(target=p, portion=q) for p, q in levels.targets], stop=levels.stop)


# --- the rules ---------------------------------------------------------------------------


def _close_legs(levels: Levels, state: OutcomeState, status: str, price: Decimal | None,
                at: dt.datetime) -> None:
    for leg in state.legs:
        if leg.status == OPEN:
            leg.status, leg.closed_at, leg.exit_price = status, at, price
    state.status, state.closed_at, state.exit_price = status, at, price
    state.close_after = None


def _tighter(levels: Levels, a: Decimal, b: Decimal) -> Decimal:
    return max(a, b) if levels.is_long else min(a, b)


def _rule_move(levels: Levels, state: OutcomeState, hits_now: int, price: Decimal) -> bool:
    """Set the stop the rule asks for from the next trade on; True if it moved."""
    rule = levels.stop_rule
    candidate: Decimal | None = None
    if rule.type == BREAKEVEN and hits_now:
        done = sum(1 for leg in state.legs if leg.status == TP_HIT)
        if done >= (rule.after_target or 1):
            candidate = levels.entry
    elif rule.type == TRAIL_TARGETS and hits_now:
        done = sum(1 for leg in state.legs if leg.status == TP_HIT)
        candidate = levels.entry if done == 1 else levels.targets[done - 2][0]
    elif rule.type == TRAILING:
        factor = rule.distance_pct / _HUNDRED
        candidate = price * (1 - factor) if levels.is_long else price * (1 + factor)
        candidate = candidate.quantize(PRICE_QUANTUM)
    if candidate is None:
        return False
    current = state.effective_stop
    new = _tighter(levels, current, candidate)
    if new == current:
        return False
    state.pending_stop = new
    return True


def _note_excursion(levels: Levels, state: OutcomeState, favourable: Decimal, adverse: Decimal) -> None:
    if levels.is_long:
        state.best = favourable if state.best is None else max(state.best, favourable)
        state.worst = adverse if state.worst is None else min(state.worst, adverse)
    else:
        state.best = favourable if state.best is None else min(state.best, favourable)
        state.worst = adverse if state.worst is None else max(state.worst, adverse)


def _stop_reached(levels: Levels, stop: Decimal, price: Decimal) -> bool:
    return price <= stop if levels.is_long else price >= stop


def _target_reached(levels: Levels, target: Decimal, price: Decimal) -> bool:
    return price >= target if levels.is_long else price <= target


def _trade_step(levels: Levels, state: OutcomeState, price: Decimal, at: dt.datetime) -> bool:
    """One trade after creation, before expiry, on an open outcome."""
    if state.pending_stop is not None:
        state.stop, state.pending_stop = state.pending_stop, None
    state.last_price = price
    state.evaluated_until = at
    _note_excursion(levels, state, price, price)
    if state.close_after is not None and at > state.close_after:
        _close_legs(levels, state, CLOSED, price, at)
        return True
    if _stop_reached(levels, state.stop, price):
        _close_legs(levels, state, SL_HIT, price, at)
        return True
    hits = 0
    for leg in state.legs:
        if leg.status != OPEN:
            continue
        if not _target_reached(levels, leg.target, price):
            break  # targets are ordered: a farther one cannot be reached either
        leg.status, leg.closed_at, leg.exit_price = TP_HIT, at, price
        hits += 1
    if hits and all(leg.status != OPEN for leg in state.legs):
        _close_legs(levels, state, TP_HIT, price, at)
        return True
    moved = _rule_move(levels, state, hits, price)
    return bool(hits) or moved


def _past_expiry(levels: Levels, at: dt.datetime) -> bool:
    return levels.expires_at is not None and at > levels.expires_at


def apply_trade(levels: Levels, state: OutcomeState, *, price: Decimal, at: dt.datetime) -> bool:
    """Apply one exchange trade. Trades at or before `created_at` are ignored; a trade
    past `expires_at` first expires the open legs at the last price applied (the
    trade itself does not count). Returns True if something worth persisting changed."""
    if state.status != OPEN or at <= levels.created_at:
        return False
    if _past_expiry(levels, at):
        return apply_expiry(levels, state)
    return _trade_step(levels, state, price, at)


def apply_candle(levels: Levels, state: OutcomeState, *, open_time: dt.datetime, open: Decimal,
                 high: Decimal, low: Decimal, close: Decimal, end: dt.datetime) -> bool:
    """Apply one candle covering [open_time, end): its open as a first trade, then its
    range with the stop checked before the targets, exits at the level. Candles
    opening before `created_at` are ignored (their trades may predate the signal); a
    candle opening at or after `expires_at` expires the open legs at the last price.
    Returns True if something worth persisting changed."""
    if state.status != OPEN or open_time < levels.created_at:
        return False
    if levels.expires_at is not None and open_time >= levels.expires_at:
        return apply_expiry(levels, state)
    changed = _trade_step(levels, state, open, open_time)
    if state.status != OPEN:
        return True
    # The rest of the candle comes after its first trade, so a move decided by the
    # open is in force for it.
    if state.pending_stop is not None:
        state.stop, state.pending_stop = state.pending_stop, None
    favourable, adverse = (high, low) if levels.is_long else (low, high)
    state.last_price = close
    state.evaluated_until = end
    if _stop_reached(levels, state.stop, adverse):
        # Stop first: the candle's extreme on the winning side may have come after it.
        _note_excursion(levels, state, state.best, state.stop)
        _close_legs(levels, state, SL_HIT, state.stop, open_time)
        return True
    _note_excursion(levels, state, favourable, adverse)
    hits = 0
    for leg in state.legs:
        if leg.status != OPEN:
            continue
        if not _target_reached(levels, leg.target, favourable):
            break
        leg.status, leg.closed_at, leg.exit_price = TP_HIT, open_time, leg.target
        hits += 1
    if hits and all(leg.status != OPEN for leg in state.legs):
        _close_legs(levels, state, TP_HIT, state.legs[-1].exit_price, open_time)
        return True
    moved = _rule_move(levels, state, hits, favourable)
    if levels.expires_at is not None and end > levels.expires_at:
        # The candle straddles the expiry: its close is the last price we know before it.
        apply_expiry(levels, state)
        return True
    return changed or bool(hits) or moved


def apply_event(levels: Levels, state: OutcomeState, *, kind: str, at: dt.datetime,
                price: Decimal | None = None) -> bool:
    """Apply an amendment made at `at` (call it in time order with the tape).
    move_stop: the stop becomes `price` for every later trade. close: the next trade
    after `at` closes every open leg at its price. cancel: every leg `cancelled`
    (only while no leg was decided). Returns False when the outcome is already closed
    or the cancel comes after a hit (the tape decided first)."""
    if state.status != OPEN:
        return False
    if kind == MOVE_STOP:
        if price is None:
            raise EngineInputError("move_stop needs a price")
        state.stop, state.pending_stop = _dec(price).quantize(PRICE_QUANTUM), None
        return True
    if kind == CLOSE:
        state.close_after = at if state.close_after is None else min(state.close_after, at)
        return True
    if kind == CANCEL:
        if any(leg.status != OPEN for leg in state.legs):
            return False
        _close_legs(levels, state, CANCELLED, None, at)
        return True
    raise EngineInputError(f"unknown amendment {kind!r}")


def apply_expiry(levels: Levels, state: OutcomeState, *, price: Decimal | None = None) -> bool:
    """Expire the open legs at `price` (default: the last price applied), closed at
    `expires_at`. Call it once the tape has passed `expires_at`; a no-op without an
    expiry or on a closed outcome. With no price known the legs expire without one."""
    if state.status != OPEN or levels.expires_at is None:
        return False
    _close_legs(levels, state, EXPIRED, price if price is not None else state.last_price, levels.expires_at)
    return True


def watch_band(levels: Levels, state: OutcomeState) -> tuple[Decimal | None, Decimal | None]:
    """(low, high): the stop in force and the next open target, ordered. A trade
    priced strictly between them closes no leg and moves no stop except a trailing
    one; it changes only the excursions, a trailing stop and the last price, which
    `apply_extremes` folds in later from the extremes of the skipped trades. So a
    tracker may skip it. Meaningless with a pending close (any trade acts on it);
    (None, None) for a closed outcome."""
    nxt = next((leg.target for leg in state.legs if leg.status == OPEN), None)
    if nxt is None:
        return None, None
    stop = state.effective_stop
    return (stop, nxt) if levels.is_long else (nxt, stop)


def apply_extremes(levels: Levels, state: OutcomeState, *, favourable: Decimal, adverse: Decimal) -> None:
    """Fold in trades that were skipped inside the watch band, given their most
    favourable and most adverse prices: the excursions, and the trailing stop the
    best of them set (in force from the next trade, as if each had been applied)."""
    if state.status != OPEN:
        return
    _note_excursion(levels, state, favourable, adverse)
    if levels.stop_rule.type == TRAILING:
        _rule_move(levels, state, 0, favourable)
