"""Gathers the measured facts the health score is computed from (the I/O edge of
pipeline.health): the feed's published stream health and counters (Redis), REST
fallback state (Redis), readiness rows, candle freshness and strategy configs
(database), the shared task counters, and whether the database and Redis answer.

Counters are cumulative where they are kept (the feed's, the tasks'); the rates
the score needs ("errors since the last check") are the difference to the totals
stored with the previous snapshot.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .aggregation import TIMEFRAME_MS, dt_to_ms
from .feeds import health_store
from signals.broadcast import health_broadcast

from .health import HealthFacts, MarketFacts, StrategyFacts, StreamFacts, health_score, health_status_for
from .models import Candle, StrategyConfig
from .redis_store import redis_client, redis_key
from .services import health_snapshot_record
from .selectors import health_snapshot_latest, market_data_health
from .shared_counters import shared_counter_totals

logger = logging.getLogger(__name__)

# A strategy config is late when the newest closed candle of its timeframe closed
# more than this long ago and it has not been evaluated on it.
STRATEGY_GRACE_SECONDS = 90
# A check older than this (three beat intervals) means beat or the worker stopped:
# readers then score the facts themselves rather than serve an old verdict.
SNAPSHOT_MAX_AGE_SECONDS = 90
_LATEST_KEY = "health:latest"
# The counters whose growth is an error, and those that count the work done.
_ERROR_COUNTERS = ("malformed", "ingest_errors", "task_failures")
_EVENT_COUNTERS = ("messages", "tasks")


def _error_text(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]  # one line, whatever the driver says


def database_check() -> str | None:
    """None when the database answers `SELECT 1`, else the error."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - an unreachable dependency is a fact here
        return _error_text(exc)
    return None


def redis_check() -> str | None:
    """None when Redis answers PING within the client's timeout, else the error."""
    try:
        redis_client().ping()
    except Exception as exc:  # noqa: BLE001
        return _error_text(exc)
    return None


def _strategy_facts(now: dt.datetime) -> StrategyFacts:
    """Enabled configs, and those late: a closed candle of their series that closed
    more than STRATEGY_GRACE_SECONDS ago lies beyond how far they were evaluated
    (`last_candle_open_time`). Judged against stored candles, not the clock, so a
    quiet symbol without a candle in some minute is not called late."""
    configs = list(StrategyConfig.objects.filter(enabled=True).select_related("instrument"))
    late = []
    for config in configs:
        size = TIMEFRAME_MS.get(config.timeframe)
        if size is None:
            continue
        pending = Candle.objects.filter(instrument_id=config.instrument_id, timeframe=config.timeframe,
                                        closed=True, open_time__gte=config.created_at - dt.timedelta(milliseconds=size))
        if config.last_candle_open_time is not None:
            pending = pending.filter(open_time__gt=config.last_candle_open_time)
        oldest = pending.order_by("open_time").values_list("open_time", flat=True).first()
        if oldest is not None and dt_to_ms(now) - (dt_to_ms(oldest) + size) > STRATEGY_GRACE_SECONDS * 1000:
            late.append(f"{config.strategy} {config.instrument.symbol} {config.timeframe}")
    return StrategyFacts(enabled=len(configs), late=tuple(late))


def _counter_totals(process: dict[str, Any] | None) -> dict[str, int]:
    stats = (process or {}).get("stats", {})
    counters = (process or {}).get("counters", {})
    tasks = shared_counter_totals("celery_task_runs_total")
    failures = shared_counter_totals("celery_task_failures_total")
    return {
        "feed_pid": (process or {}).get("pid"),
        "messages": int(stats.get("messages", 0)),
        "malformed": int(stats.get("malformed", 0)),
        "ingested": int(counters.get("trades_ingested", 0)) + int(counters.get("klines_ingested", 0)),
        "ingest_errors": int(counters.get("ingest_errors", 0)),
        "tasks": int(sum(tasks.values())),
        "task_failures": int(sum(failures.values())),
    }


def _delta(now: dict[str, Any], before: dict[str, Any], name: str) -> int:
    # A restarted feed starts its counters from zero: count from there.
    if name in ("messages", "malformed", "ingested", "ingest_errors") and now.get("feed_pid") != before.get("feed_pid"):
        return now.get(name, 0)
    return max(0, now.get(name, 0) - before.get(name, 0))


def health_facts_collect(*, now: dt.datetime | None = None) -> tuple[HealthFacts, dict[str, Any]]:
    """(facts, totals): the facts for pipeline.health.health_score, and the counter
    totals to store with the snapshot so the next check can take differences."""
    now = now or timezone.now()
    database_error = database_check()
    redis_error = redis_check()
    process, streams, fallback = None, {}, {}
    if redis_error is None:
        try:
            process = health_store.feed_process()
            streams = health_store.feed_symbol_health(now=time.time())
            fallback = health_store.fallback_state_get()
        except Exception as exc:  # noqa: BLE001 - Redis went away between the two calls
            redis_error = _error_text(exc)
    totals = _counter_totals(process if redis_error is None else None)
    if database_error is not None:
        return HealthFacts(database_error=database_error, redis_error=redis_error), totals

    previous = health_snapshot_latest()
    before = (previous.facts if previous else {}).get("totals", {})
    market_data = market_data_health(now=now)
    markets = []
    for name, info in sorted(market_data["markets"].items()):
        stream_facts = []
        for symbol, data in sorted(info["symbols"].items()):
            stream = streams.get(symbol)
            poll = fallback.get(symbol)
            last = stream.get("last_message_at") if stream else None
            stream_facts.append(StreamFacts(
                symbol=symbol,
                streamed=stream is not None,
                connected=bool(stream and stream.get("state") == "connected"),
                flowing=bool(stream and stream.get("healthy")),
                silence_seconds=None if last is None else round(max(0.0, time.time() - last), 2),
                stall_limit_seconds=stream.get("stall_limit_seconds") if stream else None,
                polled=bool(poll and not poll.get("last_error")),
                candle_fresh=bool(data["fresh"]),
            ))
        markets.append(MarketFacts(market=name, open=info["open"], readiness=str(info["readiness"]["state"]),
                                   streams=tuple(stream_facts)))
    heartbeat_age = None if not process else max(0.0, time.time() - float(process.get("published_at", 0)))
    facts = HealthFacts(
        feed_heartbeat_age=heartbeat_age,
        ingested_recent=_delta(totals, before, "ingested") if before else int(bool(process)),
        ingest_errors_recent=_delta(totals, before, "ingest_errors") if before else 0,
        markets=tuple(markets),
        strategies=_strategy_facts(now),
        errors_recent=sum(_delta(totals, before, n) for n in _ERROR_COUNTERS) if before else 0,
        events_recent=sum(_delta(totals, before, n) for n in _EVENT_COUNTERS) if before else 0,
        database_error=database_error,
        redis_error=redis_error,
    )
    return facts, totals


def health_check_record(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Measure, score, store a HealthSnapshot (pruning old ones) and push a `health`
    frame to every dashboard. Returns the scored health. With the database down
    nothing can be stored; the frame still goes out."""
    now = now or timezone.now()
    facts, totals = health_facts_collect(now=now)
    health = {**health_score(facts), "at": now.isoformat()}
    if facts.database_error is None:
        try:
            health_snapshot_record(health=health, totals=totals, now=now, keep_hours=settings.HEALTH_HISTORY_HOURS)
        except Exception:  # noqa: BLE001 - the database went away mid-check: still report
            logger.exception("could not store the health snapshot")
    try:
        # The copy /health/ and /metrics read: one Redis GET instead of a query.
        redis_client(decode=True).set(redis_key(_LATEST_KEY), json.dumps(health), ex=SNAPSHOT_MAX_AGE_SECONDS)
    except Exception:  # noqa: BLE001 - readers fall back to the stored snapshot
        logger.warning("could not cache the health check in Redis", exc_info=True)
    if health["status"] != "ok":
        reasons = "; ".join(f"{n}: {c['reason']}" for n, c in health["components"].items() if c["reason"])
        logger.warning("health %s %d: %s", health["status"], health["score"], reasons)
    health_broadcast(health)
    return health




def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    error = check()
    return {"status": "down" if error else "ok", "reason": error or "",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def dependencies_check() -> tuple[dict[str, Any], dict[str, Any]]:
    """(database, redis): each `{"status": ok|down, "reason", "latency_ms"}`, checked now."""
    return _timed(database_check), _timed(redis_check)


def health_latest() -> dict[str, Any] | None:
    """The last check as {"score", "components", "checked_at"} if younger than
    SNAPSHOT_MAX_AGE_SECONDS: from Redis (one GET), else the stored snapshot."""
    try:
        raw = redis_client(decode=True).get(redis_key(_LATEST_KEY))
    except Exception:  # noqa: BLE001 - Redis down: the database still has it
        raw = None
    if raw:
        cached = json.loads(raw)
        return {"score": cached["score"], "components": cached["components"], "checked_at": cached.get("at")}
    snapshot = health_snapshot_latest()
    if snapshot is None or (timezone.now() - snapshot.created_at).total_seconds() > SNAPSHOT_MAX_AGE_SECONDS:
        return None
    return {"score": snapshot.score, "components": snapshot.components, "checked_at": snapshot.created_at.isoformat()}


def health_current(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """`{"status", "score", "components", "database", "redis", "checked_at"[, "note"]}`.

    Cheap: the last check (health_latest) plus a live check of the database and
    Redis; scored from fresh facts only when no check was made recently."""
    now = now or timezone.now()
    database, redis = dependencies_check()
    body: dict[str, Any] = {"status": "down", "score": 0, "components": {}, "database": database, "redis": redis,
                            "checked_at": None}
    if database["status"] == "ok":
        latest = health_latest()
        if latest is not None:
            body.update(latest)
        else:
            scored = health_score(health_facts_collect(now=now)[0])
            body.update(score=scored["score"], components=scored["components"], checked_at=now.isoformat(),
                        note="no recent stored check (are celery beat and a worker running?): scored now")
    body["status"] = health_status_for(score=body["score"], database_ok=database["status"] == "ok",
                                       redis_ok=redis["status"] == "ok")
    return body
