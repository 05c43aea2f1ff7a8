"""Shortest legal route between two readiness states (pure).

The readiness state machine (pipeline.readiness.TRANSITIONS) only allows certain
moves, e.g. ERROR -> READY must pass through CHECKING_DATA. The feed decides where a
market *should* be from its checks; this finds the legal steps to get there, so
every intermediate state is recorded instead of the move being refused.
"""
from __future__ import annotations

from collections import deque
from typing import Mapping


def readiness_path(current: str, target: str, transitions: Mapping[str, frozenset[str]]) -> list[str]:
    """States to set, in order, to move from current to target ([] if already there).
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
