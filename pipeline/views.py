"""Market-data API doors: parse the query, call a selector, render. Login or token
required (DRF default). Bad parameters answer 400 with field errors; a symbol with
no data yet answers 404; nothing here is allowed to answer 500 for user input."""
from __future__ import annotations

import time

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from signals.selectors import decimal_str, iso_utc

from .aggregation import TIMEFRAMES, ms_to_dt
from .models import Candle
from .selectors import MAX_CANDLES, UnknownSymbolError, candles_list, instrument_get, latest_price
from .sessions import known_markets, market_session as session_at

DEFAULT_CANDLES = 200


class _SymbolQuery(serializers.Serializer):
    symbol = serializers.CharField(max_length=32)


class _CandlesQuery(_SymbolQuery):
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES, default="1m")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_CANDLES, default=DEFAULT_CANDLES)


class _SessionQuery(serializers.Serializer):
    market = serializers.ChoiceField(choices=(), required=False)
    symbol = serializers.CharField(max_length=32, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["market"].choices = known_markets()

    def validate(self, attrs):
        if not attrs.get("market") and not attrs.get("symbol"):
            raise ValidationError({"market": ["This field is required (or give a symbol)."]})
        return attrs


def _query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _unknown(exc: UnknownSymbolError) -> ValidationError:
    return ValidationError({"symbol": [str(exc)]})


def candle_payload(candle: Candle) -> dict:
    return {
        "open_time": iso_utc(candle.open_time),
        "open": decimal_str(candle.open),
        "high": decimal_str(candle.high),
        "low": decimal_str(candle.low),
        "close": decimal_str(candle.close),
        "volume": decimal_str(candle.volume),
        "trades": candle.trades,
        "closed": candle.closed,
    }


_SYMBOL = OpenApiParameter("symbol", OpenApiTypes.STR, required=True, description="e.g. BTCUSDT")
_LATEST = inline_serializer("LatestPrice", {
    "symbol": serializers.CharField(), "price": serializers.CharField(),
    "ts": serializers.DateTimeField(), "age_seconds": serializers.FloatField(),
})
_CANDLES = inline_serializer("Candle", many=True, fields={
    "open_time": serializers.DateTimeField(), "open": serializers.CharField(), "high": serializers.CharField(),
    "low": serializers.CharField(), "close": serializers.CharField(), "volume": serializers.CharField(),
    "trades": serializers.IntegerField(), "closed": serializers.BooleanField(),
})
_SESSION = inline_serializer("MarketSession", {
    "market": serializers.CharField(), "open": serializers.BooleanField(),
    "next_open": serializers.DateTimeField(allow_null=True), "next_close": serializers.DateTimeField(allow_null=True),
    "timezone": serializers.CharField(),
})


@extend_schema(parameters=[_SYMBOL], responses={200: _LATEST})
@api_view(["GET"])
def market_latest(request):
    """Latest traded price of a symbol with its time and age."""
    params = _query(_SymbolQuery, request)
    try:
        latest = latest_price(symbol=params["symbol"])
    except UnknownSymbolError as exc:
        raise _unknown(exc) from None
    if latest is None:
        return Response({"detail": f"No price for {params['symbol'].upper()} yet."}, status=404)
    return Response({
        "symbol": latest.symbol,
        "price": decimal_str(latest.price),
        # Trade times are whole milliseconds: show exactly three decimals.
        "ts": ms_to_dt(latest.ts_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "age_seconds": round(max(0.0, time.time() - latest.ts_ms / 1000), 3),
    })


@extend_schema(
    parameters=[
        _SYMBOL,
        OpenApiParameter("timeframe", OpenApiTypes.STR, enum=list(TIMEFRAMES), description="default 1m"),
        OpenApiParameter("limit", OpenApiTypes.INT, description=f"default {DEFAULT_CANDLES}, max {MAX_CANDLES}"),
    ],
    responses={200: _CANDLES},
)
@api_view(["GET"])
def market_candles(request):
    """The newest candles of a symbol and timeframe, oldest first."""
    params = _query(_CandlesQuery, request)
    try:
        rows = candles_list(symbol=params["symbol"], timeframe=params["timeframe"], limit=params["limit"])
    except UnknownSymbolError as exc:
        raise _unknown(exc) from None
    return Response([candle_payload(c) for c in rows])


@extend_schema(
    parameters=[
        OpenApiParameter("market", OpenApiTypes.STR, enum=list(known_markets())),
        OpenApiParameter("symbol", OpenApiTypes.STR, description="alternative to market: the symbol's market"),
    ],
    responses={200: _SESSION},
)
@api_view(["GET"])
def market_session(request):
    """Whether a market trades now, and its next open and close."""
    params = _query(_SessionQuery, request)
    market = params.get("market")
    if not market:
        try:
            market = instrument_get(symbol=params["symbol"]).market
        except UnknownSymbolError as exc:
            raise _unknown(exc) from None
    return Response(session_at(market, timezone.now()))
