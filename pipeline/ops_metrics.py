"""What /metrics reports about the pipeline and the other processes, read at scrape time.

Why at scrape time: the feed, the Celery worker and beat serve no HTTP, so their
numbers reach Prometheus through what they already publish (the feed's health
snapshot in Redis, the shared counters, the stored health snapshot) and are
turned into metric families when a web process is scraped. Also the receivers
that feed the shared counters: Celery task signals and `signal_published`.
"""
from __future__ import annotations

import logging
import time
from typing import Iterable

from celery.signals import task_failure, task_postrun, task_prerun
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from signals.dispatch import signal_published
from signals.selectors import signal_max_id

from .feeds import health_store
from .feeds.state import ConnectionState
from .health_facts import health_latest
from .shared_counters import shared_counter_inc, shared_summary_observe

logger = logging.getLogger(__name__)

_task_started: dict[str, float] = {}


class PipelineCollector:
    """Feed connection states, message rates, reconnects, REST fallback, health
    score and components, and the newest signal id. Anything unreachable is left
    out of the scrape (Prometheus marks it absent) rather than failing it."""

    def describe(self) -> list:
        # Registering would otherwise call collect(), which reads Redis and the
        # database, while Django is still starting.
        return []

    def collect(self) -> Iterable:
        yield from self._feed()
        yield from self._health()
        try:
            last_id = GaugeMetricFamily("signals_last_id", "Highest committed signal id")
            last_id.add_metric([], signal_max_id())
            yield last_id
        except Exception:  # noqa: BLE001 - /metrics must answer while the database is down
            logger.debug("signals_last_id unavailable", exc_info=True)

    def _feed(self) -> Iterable:
        try:
            process, connections, fallback = health_store.feed_overview()
        except Exception:  # noqa: BLE001 - Redis down: no feed figures this scrape
            logger.debug("feed figures unavailable", exc_info=True)
            return
        up = GaugeMetricFamily("feed_up", "1 when a feed process published its health within its TTL")
        up.add_metric([], 1 if process else 0)
        yield up
        states = GaugeMetricFamily("feed_connections", "Feed stream connections, by state", labels=["state"])
        counts = {s.value: 0 for s in ConnectionState}
        for conn in connections:
            counts[conn.get("state", "error")] = counts.get(conn.get("state", "error"), 0) + 1
        for state, n in counts.items():
            states.add_metric([state], n)
        yield states
        stats = (process or {}).get("stats", {})
        rate = GaugeMetricFamily("feed_messages_per_second", "Messages per second received by the feed")
        rate.add_metric([], float((process or {}).get("messages_per_second", 0.0)))
        yield rate
        for name, key, doc in (("feed_messages", "messages", "Stream messages received by the running feed"),
                               ("feed_reconnects", "reconnects", "Stream reconnects of the running feed"),
                               ("feed_stall_reconnects", "stall_recoveries",
                                "Stalled streams the running feed reconnected"),
                               ("feed_malformed_frames", "malformed", "Malformed frames skipped")):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], float(stats.get(key, 0)))
            yield family
        polling = GaugeMetricFamily("feed_rest_fallback_symbols", "Symbols served by REST polling now")
        polling.add_metric([], len(fallback))
        yield polling
        polled = GaugeMetricFamily("feed_rest_fallback_klines", "Klines fetched by the current REST polling runs")
        polled.add_metric([], sum(int(s.get("klines", 0)) for s in fallback.values()))
        yield polled

    def _health(self) -> Iterable:
        try:
            latest = health_latest()
        except Exception:  # noqa: BLE001
            logger.debug("health check unavailable", exc_info=True)
            return
        if latest is None:
            return  # no check within SNAPSHOT_MAX_AGE_SECONDS: absent, not a stale number
        score = GaugeMetricFamily("health_score", "Health score 0-100 at the last check")
        score.add_metric([], latest["score"])
        yield score
        points = GaugeMetricFamily("health_component_points", "Points of each health component",
                                   labels=["component"])
        for name, component in sorted(latest["components"].items()):
            points.add_metric([name], component.get("points", 0))
        yield points


def _on_task_prerun(task_id=None, **_kwargs) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


def _on_task_postrun(task_id=None, task=None, **_kwargs) -> None:
    started = _task_started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    shared_counter_inc("celery_task_runs_total", {"task": name})
    if started is not None:
        shared_summary_observe("celery_task_seconds", {"task": name}, time.perf_counter() - started)


def _on_task_failure(sender=None, **_kwargs) -> None:
    shared_counter_inc("celery_task_failures_total", {"task": getattr(sender, "name", "unknown")})


def _on_signal_published(signal=None, **_kwargs) -> None:
    shared_counter_inc("signals_committed_total", {"source": getattr(signal, "source", "unknown")})


def ops_metrics_connect() -> None:
    """Connect the counting receivers (called once from PipelineConfig.ready)."""
    task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="ops_task_prerun")
    task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="ops_task_postrun")
    task_failure.connect(_on_task_failure, weak=False, dispatch_uid="ops_task_failure")
    signal_published.connect(_on_signal_published, weak=False, dispatch_uid="ops_signal_published")
