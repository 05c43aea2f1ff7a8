"""API shapes of channels, deliveries and preferences. Input serializers parse types;
the rules per channel kind live in integrations.services."""
from __future__ import annotations

from rest_framework import serializers

from signals.models import Market

from ..models import EVENT_TYPES, Channel, ChannelKind


class _FilterFields(serializers.Serializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False,
                                   required=False)
    markets = serializers.ListField(child=serializers.ChoiceField(choices=Market.values), required=False)
    sources = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    min_confidence = serializers.IntegerField(min_value=0, max_value=100, required=False)
    enabled = serializers.BooleanField(required=False)
    name = serializers.CharField(max_length=100, allow_blank=True, required=False)


class WebhookInputSerializer(_FilterFields):
    url = serializers.URLField(max_length=2000, required=False)


class ChannelInputSerializer(_FilterFields):
    kind = serializers.ChoiceField(choices=[ChannelKind.TELEGRAM.value, ChannelKind.DISCORD.value],
                                   required=False)
    url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    bot_token = serializers.CharField(max_length=200, required=False, write_only=True)
    chat_id = serializers.CharField(max_length=64, required=False)
    topic_id = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "name", "url", "events", "markets", "sources", "min_confidence", "enabled",
                  "paused_reason", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    """The answer to `POST /api/webhooks/`: the only time the signing secret is shown."""

    secret = serializers.CharField(help_text="whsec_...: verify deliveries with it; shown once")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class ChannelSerializer(serializers.ModelSerializer):
    """A chat channel; the bot token is never read back (`has_bot_token` tells it is set)."""

    has_bot_token = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = ["id", "kind", "name", "chat_id", "topic_id", "url", "has_bot_token", "events", "markets",
                  "sources", "min_confidence", "enabled", "paused_reason", "created_at"]

    def get_has_bot_token(self, channel: Channel) -> bool:
        return bool(channel.bot_token)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField(source="message.event_id")
    event_type = serializers.CharField(source="message.event.type")
    signal_id = serializers.IntegerField(source="message.event.signal_id")
    webhook_id = serializers.CharField(source="message_id")
    attempt = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    success = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    response_excerpt = serializers.CharField()
    error = serializers.CharField()
    retry_in = serializers.FloatField(allow_null=True)


class RedeliverInputSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class RedeliverOutputSerializer(serializers.Serializer):
    webhook_id = serializers.CharField()
    event_id = serializers.IntegerField()
    status = serializers.CharField()


class BrowserPreferenceSerializer(serializers.Serializer):
    notify = serializers.BooleanField(required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False,
                                   required=False)
    markets = serializers.ListField(child=serializers.ChoiceField(choices=Market.values), required=False)
    sources = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    min_confidence = serializers.IntegerField(min_value=0, max_value=100, required=False)
