"""Prometheus counters of the delivery engine (collected in the worker processes)."""
from prometheus_client import Counter

DELIVERIES = Counter(
    "integrations_deliveries_total", "Delivery attempts to webhooks and chat channels",
    ["kind", "result"],  # kind: webhook|telegram|discord; result: success|failure|rate_limited
)
INBOUND_ALERTS = Counter("integrations_inbound_alerts_total", "Inbound alerts by result", ["result"])
