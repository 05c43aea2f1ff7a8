"""Counters that every process adds to and /metrics reads: kept in Redis.

Why not prometheus_client's own counters: those live in the memory of the process
that increments them, and Celery workers and the feed serve no HTTP, so what they
count would never reach a scrape. Prometheus' multiprocess mode needs one shared
directory on one host; our worker, beat, feed and web processes may run in
separate containers, and they all share Redis. So cross-process counters are Redis
hashes (one per metric, one field per label set) added to with HINCRBYFLOAT and
exported at scrape time by `SharedCountersCollector`.

Counting must never slow or break the work being counted: the client has a short
timeout, and after a failure counting is skipped for a few seconds.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Iterable

import redis
from django.conf import settings
from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily

from .redis_store import redis_key

logger = logging.getLogger(__name__)

# name -> (help, label names). Summaries are stored as <name>_count and <name>_sum.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "signals_committed_total": ("Signals committed by any process (API, admin, workers), by source",
                                ("source",)),
    "celery_task_runs_total": ("Celery tasks finished, by task", ("task",)),
    "celery_task_failures_total": ("Celery tasks that raised, by task", ("task",)),
    "webhook_deliveries_total": ("Outbound deliveries, by kind and result", ("kind", "result")),
}
SUMMARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "celery_task_seconds": ("Celery task run time, by task", ("task",)),
}
_TIMEOUT_SECONDS = 0.25
_PAUSE_AFTER_FAILURE_SECONDS = 5.0

_lock = threading.Lock()
_client: tuple[str, redis.Redis] | None = None
_paused_until = 0.0


def _redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None or _client[0] != settings.REDIS_URL:
            _client = (settings.REDIS_URL, redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS,
                decode_responses=True))
        return _client[1]


def _key(name: str) -> str:
    return redis_key(f"metrics:{name}")


def _field(labels: dict[str, str] | None) -> str:
    return json.dumps(sorted((labels or {}).items()), separators=(",", ":"))


def shared_counter_inc(name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
    """Add `amount` to the counter `name` (one of COUNTERS) for these labels."""
    _add({_key(name): {_field(labels): amount}})


def shared_summary_observe(name: str, labels: dict[str, str] | None, value: float) -> None:
    """Record one observation of the summary `name` (one of SUMMARIES)."""
    field = _field(labels)
    _add({_key(f"{name}_count"): {field: 1.0}, _key(f"{name}_sum"): {field: value}})


def _add(increments: dict[str, dict[str, float]]) -> None:
    global _paused_until
    if time.monotonic() < _paused_until:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for key, fields in increments.items():
            for field, amount in fields.items():
                pipe.hincrbyfloat(key, field, amount)
        pipe.execute()
    except redis.RedisError as exc:
        _paused_until = time.monotonic() + _PAUSE_AFTER_FAILURE_SECONDS
        logger.warning("shared counters unavailable for %ss: %s", _PAUSE_AFTER_FAILURE_SECONDS, exc)


def _parse(raw: dict[str, str]) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for field, value in raw.items():
        try:
            out[tuple(tuple(pair) for pair in json.loads(field))] = float(value)
        except (ValueError, TypeError):
            continue
    return out


def shared_counter_totals(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{label pairs: total} of a counter (empty when Redis is unavailable)."""
    return shared_totals([name])[name]


def shared_totals(names: list[str]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """shared_counter_totals of several counters in one round trip."""
    try:
        pipe = _redis().pipeline(transaction=False)
        for name in names:
            pipe.hgetall(_key(name))
        raws = pipe.execute()
    except redis.RedisError:
        return {name: {} for name in names}
    return {name: _parse(raw) for name, raw in zip(names, raws)}


def _values(labels: tuple[tuple[str, str], ...], names: tuple[str, ...]) -> list[str]:
    found = dict(labels)
    return [str(found.get(n, "")) for n in names]


class SharedCountersCollector:
    """prometheus_client collector exporting the Redis-kept counters at scrape time."""

    def describe(self) -> list:
        # Registering would otherwise call collect(), which reads Redis and the
        # database, while Django is still starting.
        return []

    def collect(self) -> Iterable:
        names = [*COUNTERS, *(f"{n}_{part}" for n in SUMMARIES for part in ("count", "sum"))]
        totals = shared_totals(names)
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=label_names)
            for labels, total in totals[name].items():
                family.add_metric(_values(labels, label_names), total)
            yield family
        for name, (doc, label_names) in SUMMARIES.items():
            family = SummaryMetricFamily(name, doc, labels=label_names)
            sums = totals[f"{name}_sum"]
            for labels, count in totals[f"{name}_count"].items():
                family.add_metric(_values(labels, label_names), count_value=count, sum_value=sums.get(labels, 0.0))
            yield family
