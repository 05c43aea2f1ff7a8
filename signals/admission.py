"""Admission control for WebSocket handshakes: stay fast in a reconnect storm.

When a web process restarts, every client it had comes back at once, and bots retry
every few hundred milliseconds. Measured before this module: handshakes queued
behind each other's token lookups and replays past daphne's handshake timeout, were
retried, and piled up (14,798 handshakes started for 922 accepted). So:

  - at most WS_MAX_PENDING connections per process are "pending" (handshake, auth,
    replay: everything before a client is live); one more is accepted and closed at
    once with code 4503 and reason `retry_after=<seconds>`, which costs no database
    work, instead of being left to time out;
  - at most WS_REPLAY_CONCURRENCY replays read the database at the same time, so
    admitted clients finish quickly instead of all progressing slowly.

The retry hint is the backlog (pending connections) divided by the measured rate at
which connections go live; clients add their own jitter, which spreads the refused
ones over the following seconds. (Counting refusals as demand overstated it: bots
that retry at once are counted many times, and the hint then sent well-behaved
clients away for half a minute.) A refused connection is held open (at most HOLD_REFUSED_SECONDS)
before its close: clients that ignore the hint and retry at once, as many bots do,
then cost the process a handshake every few seconds instead of several per second.
"""
from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque

from django.conf import settings

from . import metrics

CLOSE_OVERLOADED = 4503  # HTTP 503: come back after `retry_after` seconds
HOLD_REFUSED_SECONDS = 5.0
_RATE_WINDOW_SECONDS = 2.0
_MIN_RATE_PER_SECOND = 50.0  # before anything was measured (a process just started)
_MAX_RETRY_AFTER = 30


class Admission:
    """Pending-connection accounting for one event loop (one web process)."""

    def __init__(self, *, max_pending: int, replay_concurrency: int) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self.replay_slots = asyncio.Semaphore(replay_concurrency)
        self._went_live: deque[float] = deque(maxlen=8192)

    def try_admit(self) -> bool:
        if self.pending >= self.max_pending:
            return False
        self.pending += 1
        return True

    def release(self, *, live: bool) -> None:
        self.pending -= 1
        if live:
            self._went_live.append(time.monotonic())

    def retry_after(self) -> int:
        """Seconds after which the backlog should have cleared, 1..30."""
        horizon = time.monotonic() - _RATE_WINDOW_SECONDS
        while self._went_live and self._went_live[0] < horizon:
            self._went_live.popleft()
        rate = max(len(self._went_live) / _RATE_WINDOW_SECONDS, _MIN_RATE_PER_SECOND)
        return max(1, min(_MAX_RETRY_AFTER, math.ceil(self.pending / rate)))


_admissions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admission]" = weakref.WeakKeyDictionary()


def local_admission() -> Admission:
    loop = asyncio.get_running_loop()
    admission = _admissions.get(loop)
    if admission is None:
        admission = _admissions[loop] = Admission(
            max_pending=settings.WS_MAX_PENDING, replay_concurrency=settings.WS_REPLAY_CONCURRENCY
        )
    return admission


async def admission_refuse(admission: Admission, receive, send) -> None:
    """Answer a connection this process has no room for: 4503 and a retry hint,
    after holding it open (HOLD_REFUSED_SECONDS at most); no database work."""
    metrics.WS_REJECTED.labels(reason="overloaded").inc()
    message = await receive()
    if message.get("type") == "websocket.connect":
        retry_after = admission.retry_after()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(min(HOLD_REFUSED_SECONDS, retry_after))
        await send({"type": "websocket.close", "code": CLOSE_OVERLOADED, "reason": f"retry_after={retry_after}"})
