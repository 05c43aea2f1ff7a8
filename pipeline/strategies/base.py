"""What every strategy shares: the closed candle it sees, the proposal it returns,
its declared parameters, and how a proposal's levels come from ATR multiples.

Strategies are pure: indicator state and the closed candle in, a proposal or None
out. No ORM, no clock; the runner (pipeline.strategy_services) and the backtest
feed them stored candles and turn proposals into signals or simulated trades.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed candle, as floats (indicators compute in doubles like TA-Lib)."""

    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed signal. Prices are floats here; the runner rounds them to the
    instrument's tick and checks they still make a valid signal."""

    direction: str                     # "long" | "short"
    entry: float
    stop: float
    take_profit: float
    confidence: int                    # 0-100
    note: str
    # Take-profit ladder [(price, portion)], nearest first, the last equal to
    # take_profit; empty means one target.
    targets: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Param:
    """A declared strategy parameter: the catalog shows it, validation enforces it."""

    name: str
    type: type                         # int or float
    default: int | float
    minimum: int | float
    maximum: int | float
    description: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.__name__, "default": self.default,
                "min": self.minimum, "max": self.maximum, "description": self.description}


class State(Protocol):
    def update(self, bar: Bar) -> None: ...


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: `build(params)` makes fresh indicator state, `decide`
    reads it after the closed bar was fed and returns a Proposal or None."""

    name: str
    description: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], State]
    decide: Callable[[State, Bar, dict[str, Any]], Proposal | None]
    # Candles needed before the first decision is possible.
    warmup: Callable[[dict[str, Any]], int]
    # Cross-parameter rules: returns {param: [messages]} (empty when fine).
    check: Callable[[dict[str, Any]], dict[str, list[str]]] = field(default=lambda params: {})

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


# Parameters every strategy has: how levels are placed from the ATR.
LEVEL_PARAMS = (
    Param("atr_period", int, 14, 2, 200, "ATR period used to place stop and targets."),
    Param("stop_atr", float, 1.5, 0.1, 20.0, "Stop-loss distance from entry, in ATRs."),
    Param("take_profit_atr", float, 3.0, 0.1, 50.0, "Final take-profit distance from entry, in ATRs."),
    Param("ladder", int, 1, 1, 5, "Number of take-profit targets, evenly spaced up to the final one, equal portions."),
)


def levels_from_atr(*, direction: str, entry: float, atr: float, params: dict[str, Any]
                    ) -> tuple[float, float, tuple[tuple[float, float], ...]]:
    """(stop, take_profit, targets) at the params' ATR multiples from `entry`."""
    sign = 1.0 if direction == "long" else -1.0
    stop = entry - sign * atr * float(params["stop_atr"])
    reach = atr * float(params["take_profit_atr"])
    take_profit = entry + sign * reach
    steps = int(params["ladder"])
    if steps <= 1:
        return stop, take_profit, ()
    portion = 1.0 / steps
    targets = tuple((entry + sign * reach * (i + 1) / steps, portion) for i in range(steps - 1))
    return stop, take_profit, (*targets, (take_profit, portion))


def proposal_at(*, direction: str, bar: Bar, atr: float | None, params: dict[str, Any], confidence: float,
                note: str) -> Proposal | None:
    """A proposal entering at the bar's close with ATR-placed levels; None while the
    ATR is not warmed up or is zero (no room for a stop)."""
    if atr is None or atr <= 0:
        return None
    stop, take_profit, targets = levels_from_atr(direction=direction, entry=bar.close, atr=atr, params=params)
    if stop <= 0 or take_profit <= 0:
        return None
    return Proposal(direction=direction, entry=bar.close, stop=stop, take_profit=take_profit,
                    confidence=max(0, min(100, round(confidence))), note=note, targets=targets)


def crossed_up(prev_a: float | None, prev_b: float | None, a: float | None, b: float | None) -> bool:
    """a crossed above b on this bar (was at or below, now above)."""
    return None not in (prev_a, prev_b, a, b) and prev_a <= prev_b and a > b


def crossed_down(prev_a: float | None, prev_b: float | None, a: float | None, b: float | None) -> bool:
    return None not in (prev_a, prev_b, a, b) and prev_a >= prev_b and a < b


def fast_below_slow(params: dict[str, Any]) -> dict[str, list[str]]:
    """Cross-parameter rule of the two-average strategies."""
    if params["fast"] >= params["slow"]:
        return {"fast": ["Must be shorter than slow."]}
    return {}
