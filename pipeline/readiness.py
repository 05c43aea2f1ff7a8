"""Readiness per market: is the data good enough to generate signals from?

A market moves WAITING_DATA -> CHECKING_DATA -> READY -> ACTIVE (with ERROR and
STOPPED reachable from anywhere) and the state plus a human reason is stored, so
the admin, /health/ and `pipeline_status` can say *why* a market is not live.
This module holds the pure rules: the allowed moves (TRANSITIONS), the legal route
between two states (`readiness_path`) and the freshness/completeness rule
(`readiness_evaluate`). The database side lives with the other pipeline reads and
writes: `selectors.readiness_get` / `readiness_check`, `services.readiness_set` /
`readiness_move`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Mapping

from .models import ReadinessState

# Allowed moves. Staying in the same state is always allowed (it refreshes the reason).
_WAITING, _CHECKING, _READY, _ACTIVE, _ERROR, _STOPPED = (
    ReadinessState.WAITING_DATA, ReadinessState.CHECKING_DATA, ReadinessState.READY, ReadinessState.ACTIVE,
    ReadinessState.ERROR, ReadinessState.STOPPED)
TRANSITIONS: dict[str, frozenset[str]] = {
    _WAITING: frozenset({_CHECKING, _ERROR, _STOPPED}),
    _CHECKING: frozenset({_READY, _WAITING, _ERROR, _STOPPED}),
    _READY: frozenset({_ACTIVE, _CHECKING, _WAITING, _ERROR, _STOPPED}),
    _ACTIVE: frozenset({_CHECKING, _WAITING, _ERROR, _STOPPED}),
    _ERROR: frozenset({_WAITING, _CHECKING, _STOPPED}),
    _STOPPED: frozenset({_WAITING, _CHECKING}),
}


class ReadinessTransitionError(ValueError):
    """A state change the state machine does not allow."""


@dataclass(frozen=True)
class SymbolData:
    symbol: str
    newest_age_seconds: float | None   # None: no candle at all
    present: int                       # 1m candles found among the expected ones
    expected: int                      # 1m candles the session says should exist


def readiness_evaluate(symbols: list[SymbolData], *, max_age_seconds: float, min_completeness: float
                       ) -> tuple[bool, str]:
    """Pure rule: every symbol fresh (newest candle younger than max_age_seconds) and
    complete (present / expected >= min_completeness; no expected minute counts as
    complete). Returns (ok, reason)."""
    if not symbols:
        return False, "no active instruments to check"
    problems, notes = [], []
    for s in symbols:
        if s.newest_age_seconds is None:
            problems.append(f"{s.symbol}: no candles yet")
            continue
        completeness = s.present / s.expected if s.expected else 1.0
        if s.newest_age_seconds > max_age_seconds:
            problems.append(f"{s.symbol}: newest candle {s.newest_age_seconds:.0f}s old (max {max_age_seconds:.0f}s)")
        if completeness < min_completeness:
            problems.append(f"{s.symbol}: {s.present}/{s.expected} 1m candles "
                            f"({completeness:.0%} < {min_completeness:.0%})")
        notes.append(f"{s.symbol} {s.present}/{s.expected}, {s.newest_age_seconds:.0f}s old")
    if problems:
        return False, "; ".join(problems)
    return True, "fresh and complete: " + "; ".join(notes)


def readiness_path(current: str, target: str,
                   transitions: Mapping[str, frozenset[str]] = TRANSITIONS) -> list[str]:
    """States to set, in order, to move from current to target ([] if already there),
    so every intermediate state is recorded (ERROR -> READY passes CHECKING_DATA).
    Raises ValueError when target is unreachable."""
    current, target = str(current), str(target)
    if current == target:
        return []
    previous: dict[str, str | None] = {current: None}
    queue = deque([current])
    while queue:
        state = queue.popleft()
        for nxt in sorted(str(s) for s in transitions.get(state, ())):
            if nxt in previous:
                continue
            previous[nxt] = state
            if nxt == target:
                path = [nxt]
                while previous[path[-1]] != current:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            queue.append(nxt)
    raise ValueError(f"no legal path from {current} to {target}")
