"""Operator doors: /health/, /metrics and /api/stats/ (thin; logic in pipeline.health
and signals.selectors_stats)."""
from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.decorators import api_view
from rest_framework.response import Response

from pipeline.health import health_snapshot, refresh_db_gauges
from signals.stats import stats_24h


def health(request):
    """`{"status": ok|degraded|down, "score": 0-100, "components": {...}}`; 503 when down."""
    snapshot = health_snapshot()
    return JsonResponse(snapshot, status=503 if snapshot["status"] == "down" else 200)


def metrics_view(request):
    refresh_db_gauges()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@extend_schema(responses=OpenApiTypes.OBJECT)  # a schema for /api/schema/ (and check --deploy)
@api_view(["GET"])
def stats(request):
    return Response(stats_24h())
