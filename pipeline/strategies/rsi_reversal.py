"""RSI reversal: buy when Wilder's RSI climbs back out of oversold, sell when it
falls back out of overbought (the turn, not the extreme itself, so the move has
started)."""
from __future__ import annotations

from typing import Any

from pipeline.indicators import ATR, RSI

from .base import LEVEL_PARAMS, Bar, Param, Proposal, Strategy, proposal_at


class RsiState:
    __slots__ = ("rsi", "atr", "prev_rsi")

    def __init__(self, params: dict[str, Any]):
        self.rsi = RSI(int(params["rsi_period"]))
        self.atr = ATR(int(params["atr_period"]))
        self.prev_rsi: float | None = None

    def update(self, bar: Bar) -> None:
        self.prev_rsi = self.rsi.value
        self.rsi.update(bar.close)
        self.atr.update(bar.high, bar.low, bar.close)


def decide(state: RsiState, bar: Bar, params: dict[str, Any]) -> Proposal | None:
    prev, now = state.prev_rsi, state.rsi.value
    if prev is None or now is None:
        return None
    low, high = float(params["oversold"]), float(params["overbought"])
    if prev < low <= now:
        depth = low - prev
        return proposal_at(direction="long", bar=bar, atr=state.atr.value, params=params,
                           confidence=55 + 2 * depth,
                           note=f"RSI({params['rsi_period']}) rose back above {low:g} (from {prev:.1f} to {now:.1f}).")
    if prev > high >= now:
        depth = prev - high
        return proposal_at(direction="short", bar=bar, atr=state.atr.value, params=params,
                           confidence=55 + 2 * depth,
                           note=f"RSI({params['rsi_period']}) fell back below {high:g} (from {prev:.1f} to {now:.1f}).")
    return None


def _check(params: dict[str, Any]) -> dict[str, list[str]]:
    if params["oversold"] >= params["overbought"]:
        return {"oversold": ["Must be below overbought."]}
    return {}


STRATEGY = Strategy(
    name="rsi_reversal",
    description=" ".join(__doc__.split()),
    params=(
        Param("rsi_period", int, 14, 2, 200, "RSI period (Wilder smoothing)."),
        Param("oversold", float, 30.0, 1.0, 50.0, "A long fires when RSI rises back through this level."),
        Param("overbought", float, 70.0, 50.0, 99.0, "A short fires when RSI falls back through this level."),
        *LEVEL_PARAMS,
    ),
    build=RsiState,
    decide=decide,
    warmup=lambda p: max(int(p["rsi_period"]) + 1, int(p["atr_period"]) + 1) + 1,
    check=_check,
)
