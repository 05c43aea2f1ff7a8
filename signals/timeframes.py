"""The one list of timeframes a signal may name.

Signals, their API and admin, the strategies and the chart all validate against this
tuple, so a timeframe can never be accepted by one door and refused by another.
Candle storage (pipeline.aggregation) keeps its own subset: the timeframes it builds.
"""
from __future__ import annotations

SIGNAL_TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
DEFAULT_SIGNAL_TIMEFRAME = "1h"
