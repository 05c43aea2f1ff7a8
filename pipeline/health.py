"""The health score: measured facts in, six scored components out (pure, no I/O).

Why pure: the score decides what an operator sees and when a load balancer gets
503, so every rule here is tested on constructed facts, and the facts themselves
are gathered at the edge (pipeline.health_facts) where they can be shown too.

Components and their weights (the contract's seed weights):
- pipeline 30: the feed process is alive (heartbeat) and ingesting;
- data_flow 25: every stream of an open market delivers within its own learned rate
  (a stalled stream served by REST polling still earns half, since candles move);
- exchange 20: streams connected; REST polling earns part;
- candles 10: open markets ACTIVE (READY most, checking half, ERROR/STOPPED nothing);
- strategies 10: enabled strategy configs evaluated on time;
- errors 5: a low error rate (malformed frames, ingest errors, failed tasks).
Database and Redis are reported beside them; either unreachable makes the status down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WEIGHTS: dict[str, int] = {"pipeline": 30, "data_flow": 25, "exchange": 20, "candles": 10,
                           "strategies": 10, "errors": 5}
OK_AT = 85
DEGRADED_AT = 50
# A feed heartbeat older than this means the feed process is gone or hung.
FEED_HEARTBEAT_MAX_SECONDS = 10.0
# Share of a market's readiness state in the candles component.
READINESS_CREDIT = {"ACTIVE": 1.0, "READY": 0.75, "CHECKING_DATA": 0.5, "WAITING_DATA": 0.5}


@dataclass(frozen=True)
class StreamFacts:
    symbol: str
    streamed: bool = False             # the feed publishes a stream for it
    connected: bool = False            # its connection is up
    flowing: bool = False              # connected and within its stall limit
    silence_seconds: float | None = None
    stall_limit_seconds: float | None = None
    polled: bool = False               # REST fallback is polling it without error
    candle_fresh: bool = False         # newest stored data younger than the readiness max age


@dataclass(frozen=True)
class MarketFacts:
    market: str
    open: bool
    readiness: str
    streams: tuple[StreamFacts, ...] = ()


@dataclass(frozen=True)
class StrategyFacts:
    enabled: int = 0
    late: tuple[str, ...] = ()         # configs not evaluated on their latest closed candle


@dataclass(frozen=True)
class HealthFacts:
    feed_heartbeat_age: float | None = None   # seconds since the feed last published; None: never
    ingested_recent: int = 0                  # trades + klines stored since the previous check
    ingest_errors_recent: int = 0
    markets: tuple[MarketFacts, ...] = ()
    strategies: StrategyFacts = field(default_factory=StrategyFacts)
    errors_recent: int = 0                    # malformed frames, ingest errors, failed tasks
    events_recent: int = 0                    # messages received, tasks run
    database_error: str | None = None
    redis_error: str | None = None


def _component(name: str, credit: float, reason: str) -> dict[str, Any]:
    maximum = WEIGHTS[name]
    points = int(round(maximum * max(0.0, min(1.0, credit))))
    status = "ok" if points == maximum else "down" if points == 0 else "degraded"
    return {"points": points, "max": maximum, "status": status, "reason": "" if points == maximum else reason}


def _open_streams(facts: HealthFacts) -> list[StreamFacts]:
    return [s for m in facts.markets if m.open for s in m.streams]


def _names(streams: list[StreamFacts], limit: int = 8) -> str:
    names = [s.symbol for s in streams]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _pipeline(facts: HealthFacts) -> dict[str, Any]:
    if facts.feed_heartbeat_age is None:
        return _component("pipeline", 0, "no feed process is publishing (is run_feed running?)")
    if facts.feed_heartbeat_age > FEED_HEARTBEAT_MAX_SECONDS:
        return _component("pipeline", 0, f"feed heartbeat {facts.feed_heartbeat_age:.0f}s old: process gone or hung")
    if facts.ingest_errors_recent:
        return _component("pipeline", 2 / 3, f"{facts.ingest_errors_recent} failed database writes since the last "
                                              "check (batches kept for retry)")
    if _open_streams(facts) and not facts.ingested_recent:
        return _component("pipeline", 2 / 3, "feed alive but nothing ingested since the last check")
    return _component("pipeline", 1, "")


def _streams(name: str, facts: HealthFacts, *, covered, down_label: str, covered_label: str) -> dict[str, Any]:
    """Share of open-market streams flowing; those `covered` (by REST) earn half."""
    streams = _open_streams(facts)
    if not streams:
        return _component(name, 1, "")
    down = [s for s in streams if not s.flowing]
    half = [s for s in down if covered(s)]
    parts = [f"{down_label}: {_names(down)}"] if down else []
    if half:
        parts.append(f"{covered_label} {_names(half)}")
    return _component(name, (len(streams) - len(down) + 0.5 * len(half)) / len(streams), "; ".join(parts))


def _data_flow(facts: HealthFacts) -> dict[str, Any]:
    return _streams("data_flow", facts, covered=lambda s: s.candle_fresh,
                    down_label="not flowing within their usual rate", covered_label="candles kept fresh by REST for")


def _exchange(facts: HealthFacts) -> dict[str, Any]:
    return _streams("exchange", facts, covered=lambda s: s.polled,
                    down_label="streams down or stalled", covered_label="REST polling covers")


def _candles(facts: HealthFacts) -> dict[str, Any]:
    open_markets = [m for m in facts.markets if m.open]
    if not open_markets:
        return _component("candles", 1, "")
    credit = sum(READINESS_CREDIT.get(m.readiness, 0.0) for m in open_markets) / len(open_markets)
    lagging = [f"{m.market} {m.readiness}" for m in open_markets if m.readiness != "ACTIVE"]
    return _component("candles", credit, "open markets not active: " + ", ".join(lagging))


def _strategies(facts: HealthFacts) -> dict[str, Any]:
    s = facts.strategies
    if not s.enabled:
        return {**_component("strategies", 1, ""), "reason": "no strategies configured"}
    late = len(s.late)
    reason = f"{late} of {s.enabled} enabled configs not evaluated on time: {', '.join(s.late[:8])}"
    return _component("strategies", (s.enabled - late) / s.enabled, reason)


def _errors(facts: HealthFacts) -> dict[str, Any]:
    if not facts.errors_recent:
        return _component("errors", 1, "")
    rate = facts.errors_recent / max(1, facts.events_recent)
    credit = 0.6 if rate < 0.01 else 0.2 if rate < 0.05 else 0.0
    return _component("errors", credit, f"{facts.errors_recent} errors in {facts.events_recent} events since "
                                        f"the last check ({rate:.1%})")


def _dependency(error: str | None) -> dict[str, Any]:
    return {"status": "down", "reason": error} if error else {"status": "ok", "reason": ""}


def health_score(facts: HealthFacts) -> dict[str, Any]:
    """`{"status", "score", "components", "database", "redis"}` for these facts.

    Status: `down` when the database or Redis is unreachable or the score is below
    50, `degraded` from 50 to 84, `ok` from 85.
    """
    components = {
        "pipeline": _pipeline(facts),
        "data_flow": _data_flow(facts),
        "exchange": _exchange(facts),
        "candles": _candles(facts),
        "strategies": _strategies(facts),
        "errors": _errors(facts),
    }
    score = sum(c["points"] for c in components.values())
    database, redis = _dependency(facts.database_error), _dependency(facts.redis_error)
    status = health_status_for(score=score, database_ok=database["status"] == "ok", redis_ok=redis["status"] == "ok")
    return {"status": status, "score": score, "components": components, "database": database, "redis": redis}


def health_status_for(*, score: int, database_ok: bool, redis_ok: bool) -> str:
    """The status rule alone (for a stored score re-judged with live dependency checks)."""
    if not (database_ok and redis_ok) or score < DEGRADED_AT:
        return "down"
    return "degraded" if score < OK_AT else "ok"
