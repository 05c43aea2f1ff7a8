"""The catalog of strategies and the one place their parameters are validated.

`params_clean` turns submitted params (API, admin, seed command, backtest) into a
complete typed dict or field errors: unknown names, wrong types and values out of
bounds are all reported at once.
"""
from __future__ import annotations

from typing import Any

from . import bollinger_breakout, ema_crossover, macd_cross, rsi_reversal
from .base import Strategy

STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (rsi_reversal.STRATEGY, ema_crossover.STRATEGY, bollinger_breakout.STRATEGY,
                        macd_cross.STRATEGY)
}


class UnknownStrategyError(LookupError):
    def __init__(self, name: Any):
        super().__init__(f"Unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}.")


def strategy_get(name: Any) -> Strategy:
    """The registered strategy called `name`; raises UnknownStrategyError."""
    strategy = STRATEGIES.get(name) if isinstance(name, str) else None
    if strategy is None:
        raise UnknownStrategyError(name)
    return strategy


def strategy_catalog() -> list[dict[str, Any]]:
    """Every strategy with its description and parameters (type, default, bounds)."""
    return [{"name": s.name, "description": s.description, "params": [p.describe() for p in s.params]}
            for s in STRATEGIES.values()]


def _typed(value: Any, kind: type) -> int | float | None:
    # JSON gives int/float; bool is an int in Python but never a valid number here.
    if isinstance(value, bool):
        return None
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    if isinstance(value, (int, float)) and value == value and value not in (float("inf"), float("-inf")):
        return float(value)
    return None


def params_clean(strategy: Strategy, params: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(complete params with defaults filled in, field errors keyed by param name)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return {}, {"params": ["Must be an object of parameter name -> value."]}
    errors: dict[str, list[str]] = {}
    known = {p.name: p for p in strategy.params}
    for name in params:
        if name not in known:
            errors[str(name)] = [f"Unknown parameter for {strategy.name}: use {', '.join(known)}."]
    clean = strategy.defaults()
    for name, param in known.items():
        if name not in params:
            continue
        value = _typed(params[name], param.type)
        if value is None:
            errors[name] = [f"Must be {'an integer' if param.type is int else 'a number'}."]
        elif not param.minimum <= value <= param.maximum:
            errors[name] = [f"Must be between {param.minimum} and {param.maximum}."]
        else:
            clean[name] = value
    if not errors:
        errors.update(strategy.check(clean))
    return clean, errors
