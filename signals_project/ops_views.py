"""Operator doors: /health/ (+ live, ready) and /metrics (thin; the logic lives in
pipeline.health, pipeline.health_facts and pipeline.ops_metrics). /api/stats/ is in
stats_views."""
from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from typing import Any, Callable

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.health_facts import dependencies_check, health_current


class _Coalesced:
    """The last answer of `produce`, reused for OPS_COALESCE_SECONDS by this process.

    Why: load balancers, probes and scrapers poll these endpoints from many places at
    once; within a second the answer cannot change meaningfully, and computing it once
    per second keeps a burst of polls from queueing behind database and Redis round
    trips (bench/ops.py)."""

    def __init__(self, produce: Callable[[], Any]):
        self._produce = produce
        self._lock = threading.Lock()
        self._value: Any = None
        self._at = float("-inf")

    def get(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= settings.OPS_COALESCE_SECONDS:
                self._value, self._at = self._produce(), time.monotonic()
            return self._value


_health = _Coalesced(lambda: health_current())
_metrics = _Coalesced(generate_latest)


def health(request):
    """`{"status", "score", "components", "database", "redis", "checked_at"}`; 503 when down
    (pipeline.health_facts.health_current: the latest stored check + live DB/Redis checks,
    at most once a second per process)."""
    body = _health.get()
    return JsonResponse(body, status=503 if body["status"] == "down" else 200)


def health_live(request):
    """The process answers: for process supervisors (no dependency is checked)."""
    return JsonResponse({"status": "ok"})


def health_ready(request):
    """Database and Redis answer: for load balancers. 503 naming the one that does not."""
    database, redis = dependencies_check()
    ready = database["status"] == "ok" and redis["status"] == "ok"
    return JsonResponse({"status": "ok" if ready else "down", "database": database, "redis": redis},
                        status=200 if ready else 503)


def _metrics_allowed(request) -> bool:
    # Cheapest first: the address, then the token, then a session (a database read).
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        address = None
    if address is not None and any(address in ipaddress.ip_network(cidr, strict=False)
                                   for cidr in settings.METRICS_ALLOW_CIDRS):
        return True
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def metrics_view(request):
    """Prometheus text for staff, `Bearer METRICS_TOKEN`, or METRICS_ALLOW_CIDRS; 403 otherwise."""
    if not _metrics_allowed(request):
        return HttpResponse("metrics: staff session, bearer token or an allowed network required\n",
                            status=403, content_type="text/plain")
    return HttpResponse(_metrics.get(), content_type=CONTENT_TYPE_LATEST)

