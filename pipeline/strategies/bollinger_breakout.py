"""Bollinger breakout: buy when the close breaks above the upper band, sell when it
breaks below the lower band (volatility expansion)."""
from __future__ import annotations

from typing import Any

from pipeline.indicators import ATR, BollingerBands

from .base import LEVEL_PARAMS, Bar, Param, Proposal, Strategy, proposal_at


class BollingerState:
    __slots__ = ("bands", "atr", "prev_bands", "prev_close", "close")

    def __init__(self, params: dict[str, Any]):
        self.bands = BollingerBands(int(params["period"]), float(params["k"]))
        self.atr = ATR(int(params["atr_period"]))
        self.prev_bands: tuple[float, float, float] | None = None
        self.prev_close: float | None = None
        self.close: float | None = None

    def update(self, bar: Bar) -> None:
        self.prev_bands, self.prev_close, self.close = self.bands.value, self.close, bar.close
        self.bands.update(bar.close)
        self.atr.update(bar.high, bar.low, bar.close)


def decide(state: BollingerState, bar: Bar, params: dict[str, Any]) -> Proposal | None:
    prev_bands, bands, prev_close = state.prev_bands, state.bands.value, state.prev_close
    if prev_bands is None or bands is None or prev_close is None:
        return None
    lower, middle, upper = bands
    width = upper - lower
    if prev_close <= prev_bands[2] and bar.close > upper:
        beyond = (bar.close - upper) / width if width else 0.0
        return proposal_at(direction="long", bar=bar, atr=state.atr.value, params=params,
                           confidence=55 + 60 * min(0.5, beyond),
                           note=f"Close {bar.close:.6g} broke above the upper Bollinger band {upper:.6g} "
                                f"({params['period']}, {params['k']:g}).")
    if prev_close >= prev_bands[0] and bar.close < lower:
        beyond = (lower - bar.close) / width if width else 0.0
        return proposal_at(direction="short", bar=bar, atr=state.atr.value, params=params,
                           confidence=55 + 60 * min(0.5, beyond),
                           note=f"Close {bar.close:.6g} broke below the lower Bollinger band {lower:.6g} "
                                f"({params['period']}, {params['k']:g}).")
    return None


STRATEGY = Strategy(
    name="bollinger_breakout",
    description=" ".join(__doc__.split()),
    params=(
        Param("period", int, 20, 2, 200, "Bollinger period (SMA and population standard deviation)."),
        Param("k", float, 2.0, 0.5, 5.0, "Band width in standard deviations."),
        *LEVEL_PARAMS,
    ),
    build=BollingerState,
    decide=decide,
    warmup=lambda p: max(int(p["period"]), int(p["atr_period"]) + 1) + 1,
)
