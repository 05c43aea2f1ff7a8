"""Feeding candles through a strategy: the same loop for the live runner and the
backtest.

The live runner decides each closed candle over a fixed window of the stored
candles that end with it (`window_decide`), so its decision depends only on those
candles: a restarted worker, a second worker or a rerun decides exactly what an
uninterrupted one would have.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from .base import Bar, Proposal, Strategy

# Candles replayed before each decision: enough for every EMA's seed to have faded
# (its weight after 4 periods is below 0.1%) and never less than this floor.
WINDOW_FLOOR = 100
WINDOW_PERIODS = 4


def window_size(strategy: Strategy, params: dict[str, Any]) -> int:
    """How many stored candles (ending with the one decided) the live runner replays."""
    return max(WINDOW_FLOOR, WINDOW_PERIODS * strategy.warmup(params))


def replay(strategy: Strategy, params: dict[str, Any], bars: Iterable[Bar]) -> Iterator[tuple[Bar, Proposal | None]]:
    """Feed `bars` in order through fresh indicator state; yield each bar with the
    strategy's decision on it."""
    state = strategy.build(params)
    for bar in bars:
        state.update(bar)
        yield bar, strategy.decide(state, bar, params)


def window_decide(strategy: Strategy, params: dict[str, Any], bars: Sequence[Bar]) -> Proposal | None:
    """The decision on the last of `bars` (a window ending with the candle decided).
    Strategies decide without touching their state, so only the last bar is asked."""
    if not bars:
        return None
    state = strategy.build(params)
    update = state.update
    for bar in bars:
        update(bar)
    return strategy.decide(state, bars[-1], params)
