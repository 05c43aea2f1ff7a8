"""API shapes. Input serializers only parse types; the rules live in the service so
that admin, API and pipeline enforce exactly the same ones."""
from rest_framework import serializers

from ..selectors import signal_payload
from ..services import TIMEFRAMES


class SignalCreateInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32)
    direction = serializers.ChoiceField(choices=["long", "short"])
    entry_price = serializers.CharField(max_length=40)
    stop_loss = serializers.CharField(max_length=40)
    take_profit = serializers.CharField(max_length=40)
    confidence = serializers.IntegerField(min_value=0, max_value=100)
    timeframe = serializers.ChoiceField(choices=list(TIMEFRAMES), default="1h")
    source = serializers.CharField(max_length=64, default="manual")
    note = serializers.CharField(max_length=2000, default="", allow_blank=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def to_internal_value(self, data):
        # Prices may arrive as JSON numbers or strings; keep their exact text so that
        # 0.1 does not become 0.1000000000000000055511151231257827.
        if hasattr(data, "items"):
            data = {k: (str(v) if k in ("entry_price", "stop_loss", "take_profit") and
                        isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                    for k, v in data.items()}
        return super().to_internal_value(data)


class OutcomeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["open", "tp_hit", "sl_hit", "expired"])
    closed_at = serializers.DateTimeField(allow_null=True)
    exit_price = serializers.CharField(allow_null=True)
    r_multiple = serializers.CharField(allow_null=True)


class SignalSerializer(serializers.Serializer):
    """Read shape of a signal (the public contract); rendering uses signal_payload."""

    id = serializers.IntegerField()
    symbol = serializers.CharField()
    market = serializers.CharField()
    direction = serializers.ChoiceField(choices=["long", "short"])
    entry_price = serializers.CharField()
    stop_loss = serializers.CharField()
    take_profit = serializers.CharField()
    confidence = serializers.IntegerField()
    timeframe = serializers.CharField()
    source = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    outcome = OutcomeSerializer()

    def to_representation(self, instance):
        return signal_payload(instance)
