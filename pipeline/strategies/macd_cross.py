"""MACD cross: buy when the MACD line crosses above its signal line (histogram turns
positive), sell when it crosses below (momentum shift)."""
from __future__ import annotations

from typing import Any

from pipeline.indicators import ATR, MACD

from .base import LEVEL_PARAMS, Bar, Param, Proposal, Strategy, fast_below_slow, proposal_at


class MacdState:
    __slots__ = ("macd", "atr", "prev")

    def __init__(self, params: dict[str, Any]):
        self.macd = MACD(int(params["fast"]), int(params["slow"]), int(params["signal"]))
        self.atr = ATR(int(params["atr_period"]))
        self.prev: tuple[float, float, float] | None = None

    def update(self, bar: Bar) -> None:
        self.prev = self.macd.value
        self.macd.update(bar.close)
        self.atr.update(bar.high, bar.low, bar.close)


def decide(state: MacdState, bar: Bar, params: dict[str, Any]) -> Proposal | None:
    prev, now, atr = state.prev, state.macd.value, state.atr.value
    if prev is None or now is None:
        return None
    macd, signal, hist = now
    # Momentum relative to volatility: a histogram of half an ATR is a strong turn.
    strength = min(1.0, 2 * abs(hist) / atr) if atr else 0.0
    label = f"MACD({params['fast']},{params['slow']},{params['signal']})"
    if prev[2] <= 0 < hist:
        return proposal_at(direction="long", bar=bar, atr=atr, params=params, confidence=50 + 40 * strength,
                           note=f"{label} crossed above its signal line ({macd:.6g} > {signal:.6g}).")
    if prev[2] >= 0 > hist:
        return proposal_at(direction="short", bar=bar, atr=atr, params=params, confidence=50 + 40 * strength,
                           note=f"{label} crossed below its signal line ({macd:.6g} < {signal:.6g}).")
    return None


STRATEGY = Strategy(
    name="macd_cross",
    description=" ".join(__doc__.split()),
    params=(
        Param("fast", int, 12, 2, 200, "Fast EMA period."),
        Param("slow", int, 26, 3, 400, "Slow EMA period."),
        Param("signal", int, 9, 1, 100, "Signal line EMA period."),
        *LEVEL_PARAMS,
    ),
    build=MacdState,
    decide=decide,
    warmup=lambda p: max(int(p["slow"]) + int(p["signal"]) - 1, int(p["atr_period"]) + 1) + 1,
    check=fast_below_slow,
)
