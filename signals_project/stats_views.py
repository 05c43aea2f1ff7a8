"""GET /api/stats/?days=N: signal statistics joined with the pipeline's counts.

It lives in the project package because it joins two apps: `signals` computes the
signal figures (signals.stats) and must not import `pipeline`, which counts the
market updates. Thin: parse `days`, call both, render.
"""
from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from pipeline.selectors import market_updates_since
from signals.stats import DEFAULT_DAYS, MAX_DAYS, stats_report


class _StatsQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=DEFAULT_DAYS)


@extend_schema(
    parameters=[OpenApiParameter("days", OpenApiTypes.INT, description=f"window for `last_days` figures, "
                                 f"1..{MAX_DAYS} UTC days ending today (default {DEFAULT_DAYS})")],
    responses=OpenApiTypes.OBJECT,
    description="24 h counts by market and source; per source (all time and the last N days): signals, "
                "open, closed, wins, losses, breakeven, expired, cancelled, win rate, average R, average "
                "MFE/MAE in R, and per target: share reached and average leg R (see docs/methodology.md).",
)
@api_view(["GET"])
def stats(request):
    query = _StatsQuery(data=request.query_params)
    if not query.is_valid():
        raise ValidationError(query.errors)
    now = timezone.now()
    updates = market_updates_since(since=now - dt.timedelta(hours=24))
    return Response(stats_report(days=query.validated_data["days"], now=now, market_updates=updates))
