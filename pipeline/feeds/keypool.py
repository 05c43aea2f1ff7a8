"""API key pool for the exchange's REST API.

Why: backfill and fallback polling can burst (a gap of a day is 1,440 klines per
symbol, a stalled stream means polling every symbol every few seconds). One key
hits the exchange's weight limit and then a 429; ignoring the 429 earns a 418 ban.
The pool spreads requests over several keys, keeps each under its own per-minute
budget, benches a key for exactly the Retry-After the exchange asked for, and
counts usage so operators can see which key is doing what. With no keys it still
works: anonymous requests get the same accounting under one pseudo-key.

Thread-safe: Celery workers may share a pool between threads; the asyncio feed
calls it from a worker thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

ANONYMOUS = None  # the pseudo-key used when no keys are configured


class KeysExhausted(RuntimeError):
    """Every key is benched or over budget; `retry_in` says when one frees up."""

    def __init__(self, retry_in: float):
        super().__init__(f"all API keys are rate limited; retry in {retry_in:.1f}s")
        self.retry_in = retry_in


def key_label(key: str | None) -> str:
    """A printable name for a key that never reveals it."""
    if key is None:
        return "anonymous"
    return f"{key[:4]}…{key[-4:]}" if len(key) > 12 else f"{key[:2]}…"


@dataclass
class _KeyState:
    key: str | None
    window: deque = field(default_factory=deque)  # monotonic times of recent requests
    blocked_until: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    last_used: int = -1  # ticket of the last request: least recently used goes next


class ApiKeyPool:
    def __init__(self, keys: Sequence[str] = (), *, rate_per_min: int = 1200,
                 clock: Callable[[], float] = time.monotonic):
        if rate_per_min <= 0:
            raise ValueError("rate_per_min must be positive")
        unique = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
        self._keys = [_KeyState(k) for k in unique] or [_KeyState(ANONYMOUS)]
        self.rate_per_min = rate_per_min
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets = 0

    @classmethod
    def from_settings(cls) -> "ApiKeyPool":
        from django.conf import settings

        return cls(settings.BINANCE_API_KEYS, rate_per_min=settings.BINANCE_KEY_RATE_PER_MIN)

    def __len__(self) -> int:
        return len(self._keys)

    def _available_in(self, state: _KeyState, now: float) -> float:
        while state.window and state.window[0] <= now - 60.0:
            state.window.popleft()
        wait = max(0.0, state.blocked_until - now)
        if len(state.window) >= self.rate_per_min:
            wait = max(wait, state.window[0] + 60.0 - now)
        return wait

    def try_acquire(self) -> str | None:
        """Take a request slot on the least recently used free key.

        Returns the key (None = anonymous); raises KeysExhausted with the shortest
        wait when no key may be used now.
        """
        with self._lock:
            now = self._clock()
            waits = [(self._available_in(s, now), s.last_used, i) for i, s in enumerate(self._keys)]
            free = [w for w in waits if w[0] == 0.0]
            if not free:
                raise KeysExhausted(min(w[0] for w in waits))
            # Least recently used first = round robin when all are free.
            _, _, index = min(free, key=lambda w: (w[1], w[2]))
            state = self._keys[index]
            state.window.append(now)
            state.requests += 1
            self._tickets += 1
            state.last_used = self._tickets
            return state.key

    def acquire(self, *, max_wait: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> str | None:
        """Like try_acquire, but waits up to max_wait seconds for a key to free up."""
        deadline = self._clock() + max_wait
        while True:
            try:
                return self.try_acquire()
            except KeysExhausted as exc:
                remaining = deadline - self._clock()
                if exc.retry_in > remaining:
                    raise
                sleep(exc.retry_in)

    def penalize(self, key: str | None, retry_after: float) -> None:
        """The exchange answered 429/418 for this key: bench it for retry_after seconds."""
        with self._lock:
            now = self._clock()
            for state in self._keys:
                if state.key == key:
                    state.rate_limited += 1
                    state.blocked_until = max(state.blocked_until, now + max(0.0, retry_after))

    def usage(self) -> list[dict[str, Any]]:
        """Per key (labelled, never the key itself): totals and the current budget."""
        with self._lock:
            now = self._clock()
            rows = []
            for state in self._keys:
                wait = self._available_in(state, now)  # also prunes the window
                rows.append({
                    "key": key_label(state.key),
                    "requests": state.requests,
                    "rate_limited": state.rate_limited,
                    "last_minute": len(state.window),
                    "available_in": round(wait, 3),
                })
            return rows
