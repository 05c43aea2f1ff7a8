"""Strategy config API doors (/api/strategies/): thin views over
pipeline.strategy_services and the strategy catalog.

Any logged-in user reads; staff write. The body is handed to the service as raw
JSON values, because the service checks every field and rule at once: one 400
names every bad field (unknown strategy, symbol or timeframe, and each bad param
under "params"). A config that made signals is never deleted: disable it instead.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from signals.selectors import iso_utc

from .models import StrategyConfig
from .strategies import strategy_catalog
from .strategy_selectors import strategy_config_get, strategy_config_list
from .strategy_services import (
    StrategyConfigError,
    StrategyConfigInUse,
    strategy_config_create,
    strategy_config_delete,
    strategy_config_update,
)

_FIELDS = ("strategy", "symbol", "timeframe", "params", "enabled", "cooldown_minutes")
_REQUIRED = ("strategy", "symbol", "timeframe")


class StaffWrites(BasePermission):
    """Any authenticated user reads; only staff write."""

    message = "Only staff may create or change strategy configs."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(user.is_staff)


class StrategyConfigSerializer(serializers.Serializer):
    """The config as the API shows it (also documents the request body)."""

    id = serializers.IntegerField(read_only=True)
    strategy = serializers.CharField(help_text="One of GET /api/strategies/catalog/.")
    symbol = serializers.CharField()
    timeframe = serializers.ChoiceField(choices=[c for c, _ in StrategyConfig._meta.get_field("timeframe").choices])
    params = serializers.DictField(required=False, help_text="Parameter name -> value; defaults fill the rest.")
    enabled = serializers.BooleanField(required=False, default=True)
    cooldown_minutes = serializers.IntegerField(required=False, default=0, min_value=0)
    last_candle_open_time = serializers.DateTimeField(read_only=True, allow_null=True)
    last_evaluated_at = serializers.DateTimeField(read_only=True, allow_null=True)


def config_payload(config: StrategyConfig) -> dict:
    return {
        "id": config.pk,
        "strategy": config.strategy,
        "symbol": config.instrument.symbol,
        "timeframe": config.timeframe,
        "params": config.params,
        "enabled": config.enabled,
        "cooldown_minutes": config.cooldown_minutes,
        "last_candle_open_time": iso_utc(config.last_candle_open_time),
        "last_evaluated_at": iso_utc(config.last_evaluated_at),
    }


def _body(request, *, creating: bool) -> dict:
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    errors = {name: ["Unknown field."] for name in data if name not in _FIELDS}
    if creating:
        errors.update({name: ["This field is required."] for name in _REQUIRED if name not in data})
    if errors:
        raise ValidationError(errors)
    return {name: data[name] for name in _FIELDS if name in data}


_MAX_ID = 2**63 - 1  # bigint: a larger id in the URL is simply not found


def _config(pk: int) -> StrategyConfig:
    config = strategy_config_get(config_id=pk) if pk <= _MAX_ID else None
    if config is None:
        raise NotFound("No strategy config with this id.")
    return config


_BAD = OpenApiResponse(description="Field errors; bad params are listed under 'params' by name.")
_NO_AUTH = OpenApiResponse(description="No valid session or token.")
_NOT_STAFF = OpenApiResponse(description="Only staff may create or change strategy configs.")
_MISSING = OpenApiResponse(description="No strategy config with this id.")


class StrategyConfigList(APIView):
    permission_classes = [StaffWrites]
    serializer_class = StrategyConfigSerializer

    @extend_schema(responses={200: StrategyConfigSerializer(many=True), 401: _NO_AUTH})
    def get(self, request):
        return Response([config_payload(c) for c in strategy_config_list()])

    @extend_schema(request=StrategyConfigSerializer,
                   responses={201: StrategyConfigSerializer, 400: _BAD, 401: _NO_AUTH, 403: _NOT_STAFF})
    def post(self, request):
        try:
            config = strategy_config_create(**_body(request, creating=True))
        except StrategyConfigError as exc:
            raise ValidationError(exc.errors) from None
        return Response(config_payload(_config(config.pk)), status=status.HTTP_201_CREATED)


class StrategyConfigDetail(APIView):
    permission_classes = [StaffWrites]
    serializer_class = StrategyConfigSerializer

    @extend_schema(responses={200: StrategyConfigSerializer, 401: _NO_AUTH, 404: _MISSING})
    def get(self, request, pk: int):
        return Response(config_payload(_config(pk)))

    @extend_schema(request=StrategyConfigSerializer(partial=True),
                   responses={200: StrategyConfigSerializer, 400: _BAD, 401: _NO_AUTH, 403: _NOT_STAFF, 404: _MISSING})
    def patch(self, request, pk: int):
        _config(pk)
        try:
            config = strategy_config_update(config_id=pk, **_body(request, creating=False))
        except StrategyConfigError as exc:
            raise ValidationError(exc.errors) from None
        return Response(config_payload(_config(config.pk)))

    @extend_schema(responses={204: None, 401: _NO_AUTH, 403: _NOT_STAFF, 404: _MISSING,
                              409: OpenApiResponse(description="The config made signals: disable it.")})
    def delete(self, request, pk: int):
        _config(pk)
        try:
            strategy_config_delete(config_id=pk)
        except StrategyConfigInUse as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


_CATALOG = inline_serializer("StrategyCatalogEntry", {
    "name": serializers.CharField(),
    "description": serializers.CharField(),
    "params": inline_serializer("StrategyParam", {
        "name": serializers.CharField(), "type": serializers.ChoiceField(choices=["int", "float"]),
        "default": serializers.FloatField(), "min": serializers.FloatField(), "max": serializers.FloatField(),
        "description": serializers.CharField(),
    }, many=True),
}, many=True)


class StrategyCatalog(APIView):
    @extend_schema(responses={200: _CATALOG, 401: _NO_AUTH})
    def get(self, request):
        return Response(strategy_catalog())
