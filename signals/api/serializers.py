"""API shapes. Input serializers only parse types (text to Decimal, int, datetime);
the domain rules live in the service so that admin, API, inbound alerts and the
pipeline enforce exactly the same ones. `parse_every_field` lets a door report every
bad field in one answer: type errors from here, domain errors from the service."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, get_error_detail

from ..models import Direction, EventType, OutcomeStatus, StopRuleType
from ..prices import PriceError, decimal_parse, price_parse
from ..selectors import signal_payload
from ..services import MAX_NOTE_LENGTH
from ..timeframes import DEFAULT_SIGNAL_TIMEFRAME, SIGNAL_TIMEFRAMES


@extend_schema_field(OpenApiTypes.STR)
class PriceField(serializers.Field):
    """A price as a decimal string in JSON; parsed by the one price rule."""

    def to_internal_value(self, data):
        try:
            return price_parse(data)
        except PriceError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.STR)
class DecimalTextField(PriceField):
    """A plain decimal (JSON number or string), kept exact."""

    def to_internal_value(self, data):
        try:
            return decimal_parse(data)
        except PriceError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TargetSerializer(serializers.Serializer):
    price = serializers.CharField()
    portion = serializers.CharField()


class TargetInputSerializer(serializers.Serializer):
    price = PriceField()
    portion = DecimalTextField()


class StopRuleSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=StopRuleType.choices)
    after_target = serializers.IntegerField(required=False, help_text="breakeven: the target after which "
                                            "the stop moves to entry")
    distance_pct = serializers.CharField(required=False, help_text="trailing: distance from the best price, %")


def _exact_numbers(data: Any, fields: tuple[str, ...]) -> Any:
    # Prices may arrive as JSON numbers; keep their exact text so that 0.1 does not
    # become 0.1000000000000000055511151231257827.
    if not isinstance(data, Mapping):
        return data
    return {k: (str(v) if k in fields and isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in data.items()}


def parse_every_field(serializer: serializers.Serializer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run every field of `serializer` on its initial data; return (parsed values,
    type errors). Unlike is_valid() this keeps the values that parsed, so the
    service can judge them in the same round."""
    data = serializer.initial_data
    if not isinstance(data, Mapping):
        return {}, {"non_field_errors": ["Invalid data: expected a JSON object."]}
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for field in serializer._writable_fields:
        try:
            value = field.run_validation(field.get_value(data))
        except serializers.ValidationError as exc:
            errors[field.field_name] = exc.detail
        except DjangoValidationError as exc:
            errors[field.field_name] = get_error_detail(exc)
        except SkipField:
            continue
        else:
            values[field.source] = _plain(value)
    return values, errors


def _plain(value: Any) -> Any:
    """Nested serializers' OrderedDicts as plain dicts and lists, for the service."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class SignalCreateInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32)
    direction = serializers.ChoiceField(choices=Direction.values)
    entry_price = PriceField()
    stop_loss = PriceField()
    take_profit = PriceField(required=False, allow_null=True, default=None,
                             help_text="the last target's price; may be left out when targets are given")
    confidence = serializers.IntegerField(min_value=0, max_value=100)
    timeframe = serializers.ChoiceField(choices=list(SIGNAL_TIMEFRAMES), default=DEFAULT_SIGNAL_TIMEFRAME)
    source = serializers.CharField(max_length=64, default="manual")
    note = serializers.CharField(max_length=MAX_NOTE_LENGTH, default="", allow_blank=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    targets = TargetInputSerializer(many=True, required=False, allow_null=True, default=None,
                                    help_text="take-profit ladder, nearest first; portions sum to 1")
    stop_rule = StopRuleSerializer(required=False, allow_null=True, default=None)
    external_id = serializers.CharField(max_length=128, required=False, allow_null=True, default=None)

    _PRICE_FIELDS = ("entry_price", "stop_loss", "take_profit")

    def __init__(self, *args, data=serializers.empty, **kwargs):
        if data is not serializers.empty:
            data = _exact_numbers(data, self._PRICE_FIELDS)
            if isinstance(data, Mapping) and isinstance(data.get("targets"), list):
                data["targets"] = [_exact_numbers(t, ("price", "portion")) for t in data["targets"]]
        super().__init__(*args, data=data, **kwargs)



class EventInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EventType.choices)
    price = PriceField(required=False, allow_null=True, default=None, help_text="move_stop: the new stop")
    reason = serializers.CharField(max_length=MAX_NOTE_LENGTH, required=False, allow_blank=True, default="")

    def __init__(self, *args, data=serializers.empty, **kwargs):
        if data is not serializers.empty:
            data = _exact_numbers(data, ("price",))
        super().__init__(*args, data=data, **kwargs)


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EventType.choices)
    price = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)


class LegSerializer(serializers.Serializer):
    target = serializers.CharField(help_text="the target's price")
    portion = serializers.CharField()
    status = serializers.ChoiceField(choices=OutcomeStatus.values)
    closed_at = serializers.DateTimeField(allow_null=True)
    exit_price = serializers.CharField(allow_null=True)
    r = serializers.CharField(allow_null=True, help_text="this leg's R against the original stop")


class OutcomeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OutcomeStatus.values)
    closed_at = serializers.DateTimeField(allow_null=True)
    exit_price = serializers.CharField(allow_null=True)
    r_multiple = serializers.CharField(allow_null=True)
    legs = LegSerializer(many=True)
    stop_price = serializers.CharField(allow_null=True, help_text="the stop the outcome tracker holds in force")
    mfe_r = serializers.CharField(allow_null=True, help_text="maximum favourable excursion, in R")
    mae_r = serializers.CharField(allow_null=True, help_text="maximum adverse excursion, in R")


class TriggerSerializer(serializers.Serializer):
    config_id = serializers.IntegerField()
    timeframe = serializers.CharField()
    candle_open_time = serializers.DateTimeField()


class SignalSerializer(serializers.Serializer):
    """Read shape of a signal (the public contract); rendering uses signal_payload."""

    id = serializers.IntegerField()
    symbol = serializers.CharField()
    market = serializers.CharField()
    direction = serializers.ChoiceField(choices=Direction.values)
    entry_price = serializers.CharField()
    stop_loss = serializers.CharField()
    take_profit = serializers.CharField()
    confidence = serializers.IntegerField()
    timeframe = serializers.CharField()
    source = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    targets = TargetSerializer(many=True)
    stop_rule = StopRuleSerializer()
    trigger = TriggerSerializer(allow_null=True)
    effective_stop = serializers.CharField(help_text="the stop in force now")
    events = EventSerializer(many=True, help_text="amendments, oldest first")
    outcome = OutcomeSerializer()

    def to_representation(self, instance):
        return signal_payload(instance)
