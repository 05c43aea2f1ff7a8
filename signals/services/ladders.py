"""Domain rules for a signal's take-profit ladder and stop rule (pure, no ORM).

Doors parse types; these functions judge whether typed values make a sensible trade
plan and return the stored, normalized form. See docs/methodology.md for what each
stop rule does once the signal is live.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..models import StopRuleType
from ..prices import PriceError, decimal_parse, decimal_str, price_parse

MAX_TARGETS = 10
MAX_TRAILING_PCT = Decimal("50")
PORTION_DECIMAL_PLACES = 6

Errors = dict[str, list[str]]


def _portion_parse(value: Any) -> Decimal:
    number = decimal_parse(value)
    if number <= 0 or number > 1:
        raise PriceError("A portion must be greater than 0 and at most 1.")
    if number != number.quantize(Decimal(1).scaleb(-PORTION_DECIMAL_PLACES)):
        raise PriceError(f"A portion has at most {PORTION_DECIMAL_PLACES} decimal places.")
    return number


def targets_clean(
    raw: Any, *, direction: str | None, entry: Decimal | None, take_profit: Decimal | None, errors: Errors
) -> tuple[list[dict[str, str]] | None, Decimal | None]:
    """Judge a ladder; return (stored targets, take_profit) or add errors.

    Absent ladder: one target at take_profit, portion 1. Ladder without take_profit:
    take_profit is the last target's price. Both given: they must agree.
    """
    if raw is None:
        if take_profit is None:
            return None, None
        return [{"price": decimal_str(take_profit), "portion": "1"}], take_profit
    if not isinstance(raw, (list, tuple)) or not raw:
        errors.setdefault("targets", []).append("Must be a non-empty list of {\"price\", \"portion\"} objects.")
        return None, take_profit
    if len(raw) > MAX_TARGETS:
        errors.setdefault("targets", []).append(f"At most {MAX_TARGETS} targets are allowed.")
        return None, take_profit
    prices: list[Decimal] = []
    portions: list[Decimal] = []
    problems: list[str] = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or set(item) - {"price", "portion"}:
            problems.append(f"Target {number}: must be an object with 'price' and 'portion'.")
            continue
        try:
            prices.append(price_parse(item.get("price")))
        except PriceError as exc:
            problems.append(f"Target {number} price: {exc}")
        try:
            portions.append(_portion_parse(item.get("portion")))
        except PriceError as exc:
            problems.append(f"Target {number} portion: {exc}")
    if not problems:
        if sum(portions) != 1:
            problems.append(f"The portions must add up to 1 (they add up to {decimal_str(sum(portions))}).")
        if direction in ("long", "short") and entry is not None:
            problems.extend(_order_problems(prices, direction=direction, entry=entry))
    if problems:
        errors.setdefault("targets", []).extend(problems)
        return None, take_profit
    last = prices[-1]
    if take_profit is not None and take_profit != last:
        errors.setdefault("take_profit", []).append(
            f"Must equal the last target's price ({decimal_str(last)}), or be left out."
        )
        return None, take_profit
    stored = [{"price": decimal_str(p), "portion": decimal_str(q)} for p, q in zip(prices, portions)]
    return stored, last


def _order_problems(prices: list[Decimal], *, direction: str, entry: Decimal) -> list[str]:
    is_long = direction == "long"
    previous = entry
    for number, price in enumerate(prices, start=1):
        farther = price > previous if is_long else price < previous
        if not farther:
            where = "above" if is_long else "below"
            what = "the entry price" if number == 1 else f"target {number - 1}"
            return [f"For a {direction} signal target {number} must be {where} {what}: "
                    "targets are ordered away from the entry."]
        previous = price
    return []


def stop_rule_clean(raw: Any, *, target_count: int | None, errors: Errors) -> dict[str, Any] | None:
    """Judge a stop rule; return its stored form or add errors under `stop_rule`."""
    if raw is None:
        return {"type": StopRuleType.FIXED.value}
    if not isinstance(raw, dict):
        errors.setdefault("stop_rule", []).append("Must be an object with a 'type'.")
        return None
    kind = raw.get("type")
    allowed_keys = {
        StopRuleType.FIXED: {"type"},
        StopRuleType.BREAKEVEN: {"type", "after_target"},
        StopRuleType.TRAIL_TARGETS: {"type"},
        StopRuleType.TRAILING: {"type", "distance_pct"},
    }
    if kind not in StopRuleType.values:
        errors.setdefault("stop_rule", []).append(f"'type' must be one of {', '.join(StopRuleType.values)}.")
        return None
    extra = set(raw) - allowed_keys[StopRuleType(kind)]
    if extra:
        errors.setdefault("stop_rule", []).append(f"Unknown keys for '{kind}': {', '.join(sorted(extra))}.")
        return None
    if kind == StopRuleType.BREAKEVEN:
        return _breakeven_clean(raw.get("after_target"), target_count=target_count, errors=errors)
    if kind == StopRuleType.TRAIL_TARGETS:
        if target_count is not None and target_count < 2:
            errors.setdefault("stop_rule", []).append("'trail_targets' needs at least two targets.")
            return None
        return {"type": kind}
    if kind == StopRuleType.TRAILING:
        try:
            distance = decimal_parse(raw.get("distance_pct"))
        except PriceError as exc:
            errors.setdefault("stop_rule", []).append(f"'distance_pct': {exc}")
            return None
        if not 0 < distance <= MAX_TRAILING_PCT:
            errors.setdefault("stop_rule", []).append(
                f"'distance_pct' must be greater than 0 and at most {MAX_TRAILING_PCT}.")
            return None
        return {"type": kind, "distance_pct": decimal_str(distance)}
    return {"type": kind}


def _breakeven_clean(after: Any, *, target_count: int | None, errors: Errors) -> dict[str, Any] | None:
    if isinstance(after, bool) or not isinstance(after, int):
        errors.setdefault("stop_rule", []).append("'after_target' must be a whole number.")
        return None
    # After the last target nothing is left to protect, so k stops one short of it.
    highest = (target_count - 1) if target_count is not None else None
    if after < 1 or (highest is not None and after > highest):
        if highest is not None and highest < 1:
            message = "'breakeven' needs at least two targets (the stop moves after one of them)."
        else:
            message = f"'after_target' must be between 1 and {highest if highest is not None else 'the targets - 1'}."
        errors.setdefault("stop_rule", []).append(message)
        return None
    return {"type": StopRuleType.BREAKEVEN.value, "after_target": after}
