"""Health scoring. `score_components` is pure (data in, data out); `health_snapshot`
gathers the inputs (database, Redis, market data freshness) at the edge.

Status rules: any *critical* component down -> "down" (503); otherwise a score
below 80 or any component not ok -> "degraded"; else "ok".
"""
from __future__ import annotations

import time
from typing import Any, Callable

from prometheus_client import Gauge

# name -> (weight, critical)
COMPONENT_WEIGHTS: dict[str, tuple[int, bool]] = {
    "database": (40, True),
    "redis": (30, True),
    "market_data": (30, False),
}

SIGNALS_LAST_ID = Gauge("signals_last_id", "Highest committed signal id")
HEALTH_SCORE = Gauge("signals_health_score", "Health score 0-100 at the last check")


def score_components(components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Combine component states ("ok" | "degraded" | "down") into status and score."""
    value = {"ok": 1.0, "degraded": 0.5, "down": 0.0}
    total_weight = sum(COMPONENT_WEIGHTS.get(name, (10, False))[0] for name in components) or 1
    score = 0.0
    critical_down = False
    for name, info in components.items():
        weight, critical = COMPONENT_WEIGHTS.get(name, (10, False))
        state = info.get("status", "down")
        score += weight * value.get(state, 0.0)
        if critical and state == "down":
            critical_down = True
    score_int = int(round(100 * score / total_weight))
    if critical_down:
        status = "down"
    elif score_int < 80 or any(c.get("status") != "ok" for c in components.values()):
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "score": score_int, "components": components}


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - a failing dependency is data here
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _check_database() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"status": "ok"}


def _check_market_data() -> dict[str, Any]:
    from pipeline.selectors import market_data_health

    return market_data_health()


def health_snapshot() -> dict[str, Any]:
    """Check every component now and score them."""
    components = {
        "database": _timed(_check_database),
        "redis": _timed(_check_redis),
        "market_data": _timed(_check_market_data),
    }
    snapshot = score_components(components)
    HEALTH_SCORE.set(snapshot["score"])
    return snapshot


def refresh_db_gauges() -> None:
    """Gauges read from the database at scrape time, so any web process reports the
    same global numbers."""
    try:
        from signals.selectors import signal_max_id

        SIGNALS_LAST_ID.set(signal_max_id())
    except Exception:  # noqa: BLE001 - /metrics must answer even when the DB is down
        pass
