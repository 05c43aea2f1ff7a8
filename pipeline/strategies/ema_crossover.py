"""EMA crossover: buy when the fast EMA crosses above the slow one, sell when it
crosses below (trend following)."""
from __future__ import annotations

from typing import Any

from pipeline.indicators import ATR, EMA

from .base import (
    LEVEL_PARAMS, Bar, Param, Proposal, Strategy, crossed_down, crossed_up, fast_below_slow, proposal_at,
)


class EmaState:
    __slots__ = ("fast", "slow", "atr", "prev_fast", "prev_slow")

    def __init__(self, params: dict[str, Any]):
        self.fast = EMA(int(params["fast"]))
        self.slow = EMA(int(params["slow"]))
        self.atr = ATR(int(params["atr_period"]))
        self.prev_fast: float | None = None
        self.prev_slow: float | None = None

    def update(self, bar: Bar) -> None:
        self.prev_fast, self.prev_slow = self.fast.value, self.slow.value
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        self.atr.update(bar.high, bar.low, bar.close)


def decide(state: EmaState, bar: Bar, params: dict[str, Any]) -> Proposal | None:
    args = (state.prev_fast, state.prev_slow, state.fast.value, state.slow.value)
    for direction, crossed, word in (("long", crossed_up, "above"), ("short", crossed_down, "below")):
        if crossed(*args):
            fast, slow, atr = state.fast.value, state.slow.value, state.atr.value
            # The wider the gap opened on the crossing bar (in ATRs), the firmer the cross.
            strength = abs(fast - slow) / atr if atr else 0.0
            return proposal_at(direction=direction, bar=bar, atr=atr, params=params,
                               confidence=50 + 40 * min(1.0, strength),
                               note=f"EMA({params['fast']}) crossed {word} EMA({params['slow']}) "
                                    f"({fast:.6g} vs {slow:.6g}).")
    return None


STRATEGY = Strategy(
    name="ema_crossover",
    description=" ".join(__doc__.split()),
    params=(
        Param("fast", int, 9, 2, 200, "Fast EMA period."),
        Param("slow", int, 21, 3, 400, "Slow EMA period."),
        *LEVEL_PARAMS,
    ),
    build=EmaState,
    decide=decide,
    warmup=lambda p: max(int(p["slow"]), int(p["atr_period"]) + 1) + 1,
    check=fast_below_slow,
)
