"""Counters of the integrations.

Deliveries run in Celery workers, which serve no /metrics, so they are counted in the
Redis-kept shared counters that every process's /metrics exports
(`webhook_deliveries_total{kind, result}`, pipeline.shared_counters). Inbound alerts
arrive in the web processes and use a plain prometheus counter.
"""
from prometheus_client import Counter

from pipeline.shared_counters import shared_counter_inc

INBOUND_ALERTS = Counter("integrations_inbound_alerts_total", "Inbound alerts by result", ["result"])


def delivery_counted(*, kind: str, result: str) -> None:
    """One delivery attempt: kind webhook|telegram|discord, result success|failure|rate_limited."""
    shared_counter_inc("webhook_deliveries_total", {"kind": kind, "result": result})
