"""Feeding candles through a strategy: the same loop for the live runner and the
backtest.

The live runner decides each closed candle over a fixed window of the stored
candles that end with it (`window_decide`), and only once that many candles are
stored, so its decision depends only on those candles: a restarted worker, a second
worker, a rerun or a backtest decides exactly what an uninterrupted one would have.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from .base import Bar, Proposal, Strategy

# Candles replayed before each decision: three warm-ups (an EMA's seed then weighs
# a few percent at most, Wilder averages less) and never fewer than the floor.
WINDOW_FLOOR = 30
WINDOW_PERIODS = 3


def window_size(strategy: Strategy, params: dict[str, Any]) -> int:
    """How many stored candles (ending with the one decided) every decision replays;
    a candle with fewer stored candles up to it is not decided."""
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
