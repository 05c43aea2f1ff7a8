"""Connection state machine, per-connection health and reconnect backoff (pure).

Why explicit: ad-hoc feed clients keep a couple of booleans ("connected",
"running") and end up reconnecting a connection that is being shut down, or
reporting "connected" for a socket that died. Here every change goes through
`ConnectionStateMachine.move`, which refuses transitions the table does not allow,
so an impossible sequence fails loudly in tests instead of silently in production.
"""
from __future__ import annotations

import enum
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


class ConnectionState(str, enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    RECONNECTING = "reconnecting"


_DISCONNECTED, _CONNECTING, _CONNECTED, _DISCONNECTING, _ERROR, _RECONNECTING = (
    ConnectionState.DISCONNECTED, ConnectionState.CONNECTING, ConnectionState.CONNECTED,
    ConnectionState.DISCONNECTING, ConnectionState.ERROR, ConnectionState.RECONNECTING)
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    _DISCONNECTED: frozenset({_CONNECTING}),
    # A handshake either succeeds, fails (error), or is abandoned on shutdown.
    _CONNECTING: frozenset({_CONNECTED, _ERROR, _DISCONNECTED}),
    # A live connection is closed on purpose, dies (error), or is recycled.
    _CONNECTED: frozenset({_DISCONNECTING, _ERROR, _RECONNECTING}),
    _DISCONNECTING: frozenset({_DISCONNECTED}),
    _ERROR: frozenset({_RECONNECTING, _DISCONNECTED}),
    _RECONNECTING: frozenset({_CONNECTING, _DISCONNECTED}),
}


class InvalidTransition(RuntimeError):
    def __init__(self, name: str, old: ConnectionState, new: ConnectionState):
        super().__init__(f"connection {name}: {old.value} -> {new.value} is not allowed")
        self.old, self.new = old, new


class ConnectionStateMachine:
    """Holds one connection's state; `move` validates against TRANSITIONS."""

    def __init__(self, name: str, *,
                 on_change: Callable[[str, ConnectionState, ConnectionState, str], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.state = ConnectionState.DISCONNECTED
        self.reason = ""
        self.changed_at = clock()
        self._on_change = on_change
        self._clock = clock

    def can_move(self, new: ConnectionState) -> bool:
        return new in TRANSITIONS[self.state]

    def move(self, new: ConnectionState, reason: str = "") -> None:
        if new not in TRANSITIONS[self.state]:
            raise InvalidTransition(self.name, self.state, new)
        old, self.state, self.reason, self.changed_at = self.state, new, reason, self._clock()
        if self._on_change:
            self._on_change(self.name, old, new, reason)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt)).

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads a
    reconnect storm of many clients evenly instead of in synchronized waves.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)


@dataclass
class ConnectionHealth:
    """Counters and timestamps for one logical connection (epoch seconds)."""
    connected_at: float | None = None
    last_message_at: float | None = None
    last_ping_at: float | None = None       # last ping received from the server
    latency_ms: float | None = None         # round trip of our keepalive ping
    messages: int = 0
    bytes: int = 0
    trades: int = 0
    klines: int = 0
    malformed: int = 0
    reconnects: int = 0
    handshake_failures: int = 0
    stale_events: int = 0
    last_error: str = ""
    symbol_last_message_at: dict[str, float] = field(default_factory=dict)
    # Exchange time (ms) of the newest trade/kline per symbol: where a backfill after
    # an outage must start, independent of our own clock.
    symbol_last_market_ms: dict[str, int] = field(default_factory=dict)
    # Learned rate per symbol: an exponentially weighted mean of the gaps between its
    # messages (seconds). It is what "silent for too long" is measured against.
    symbol_gap_ewma: dict[str, float] = field(default_factory=dict)
    # Times the watchdog recycled this connection because a stream stalled.
    stall_recoveries: int = 0

    def record_symbol_message(self, symbol: str, now: float) -> None:
        """Note a message of `symbol` at `now` and learn its usual gap."""
        last = self.symbol_last_message_at.get(symbol)
        if last is not None:
            self.symbol_gap_ewma[symbol] = gap_ewma_update(self.symbol_gap_ewma.get(symbol), now - last)
        self.symbol_last_message_at[symbol] = now

    def record_message(self, size: int, now: float) -> None:
        self.messages += 1
        self.bytes += size
        self.last_message_at = now

    def is_stale(self, now: float, stale_seconds: float) -> bool:
        """No message for stale_seconds since the last message (or since connecting)."""
        reference = self.last_message_at or self.connected_at
        return reference is not None and now - reference > stale_seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Weight of the newest gap in the learned mean: about the last 20 messages count.
GAP_EWMA_ALPHA = 0.1


def gap_ewma_update(mean: float | None, gap: float) -> float:
    """The learned mean gap after one more observed gap (the first gap seeds it)."""
    gap = max(0.0, gap)
    return gap if mean is None else mean + GAP_EWMA_ALPHA * (gap - mean)


def stall_limit(*, expected_gap: float | None, stale_seconds: float, min_seconds: float, factor: float) -> float:
    """How long a stream may stay silent before it counts as stalled (seconds).

    `factor` times its own learned gap, so a busy stream that stops is noticed
    within seconds and a quiet one is given the room its quiet needs; never less
    than `min_seconds` (one late burst is not a stall) and never more than
    `stale_seconds` (kline streams push every second or two even without trades, so
    silence beyond that is never normal).
    """
    if expected_gap is None:
        return stale_seconds
    return min(stale_seconds, max(min_seconds, factor * expected_gap))


def symbol_stream_healthy(*, state: str, symbol_last_message_at: float | None, now: float,
                          stale_seconds: float, expected_gap: float | None = None,
                          min_seconds: float = 0.0, factor: float = 0.0) -> bool:
    """A symbol's stream is healthy when its connection is up and the symbol itself
    produced a message within its stall limit (see `stall_limit`)."""
    limit = stall_limit(expected_gap=expected_gap, stale_seconds=stale_seconds, min_seconds=min_seconds,
                        factor=factor) if factor else stale_seconds
    return (
        state == ConnectionState.CONNECTED.value
        and symbol_last_message_at is not None
        and now - symbol_last_message_at <= limit
    )
