"""Where signals go (channels: webhooks, Telegram, Discord) and where they come from
(inbound alert tokens), with the delivery log that makes both auditable.

One delivery engine serves every channel kind: an `Event` is one committed fact
(a signal created, an outcome changed, an amendment published), a `Message` is that
event owed to one channel (its id is the `webhook-id`, the same on every retry), and
a `Delivery` is one attempt to hand it over. Signal ids are kept as plain integers,
not foreign keys: signals are permanent, and this app must not depend on the
order of `signals`' own migrations.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    TELEGRAM = "telegram", "Telegram"
    DISCORD = "discord", "Discord"


class EventType(models.TextChoices):
    CREATED = "signal.created", "Signal created"
    OUTCOME = "signal.outcome", "Outcome changed"
    AMENDED = "signal.amended", "Signal amended"


EVENT_TYPES: tuple[str, ...] = tuple(EventType.values)


def default_events() -> list[str]:
    return list(EVENT_TYPES)


class Channel(models.Model):
    """One place a user's signals are delivered to, with that target's filters.

    Empty `markets`/`sources` mean "all"; `min_confidence` 0 means every signal.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=100, blank=True, default="")
    # Webhook endpoint or Discord webhook URL (empty for Telegram).
    url = models.URLField(max_length=2000, blank=True, default="")
    # Standard Webhooks signing secret ("whsec_..."); shown to the owner once.
    secret = models.CharField(max_length=100, blank=True, default="")
    # Telegram: bot token (write-only in the API), chat and optional forum topic.
    bot_token = models.CharField(max_length=200, blank=True, default="")
    chat_id = models.CharField(max_length=64, blank=True, default="")
    topic_id = models.BigIntegerField(null=True, blank=True)
    events = models.JSONField(default=default_events)
    markets = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    min_confidence = models.PositiveSmallIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    # Set when the channel has failed without a success for a day; the owner sees it.
    paused_reason = models.CharField(max_length=500, blank=True, default="")
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["owner", "kind"], name="channel_owner_kind"),
            # The fan-out's query: routable channels by confidence threshold.
            models.Index(
                fields=["min_confidence"], name="channel_routable",
                condition=models.Q(enabled=True, paused_reason=""),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(min_confidence__lte=100), name="channel_min_confidence_le_100"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} of {self.owner_id}"


class Event(models.Model):
    """One committed fact, stored once with the exact JSON body webhooks receive."""

    type = models.CharField(max_length=32, choices=EventType.choices)
    # Unique per fact, so a fan-out that runs twice stores (and sends) it once.
    key = models.CharField(max_length=200, unique=True)
    signal_id = models.BigIntegerField(db_index=True)
    symbol = models.CharField(max_length=32)
    market = models.CharField(max_length=16)
    source = models.CharField(max_length=64)
    confidence = models.PositiveSmallIntegerField()
    # {"signal": {...}} (+ {"event": {...}} for amendments): what formatters read.
    data = models.JSONField()
    # The Standard Webhooks body, serialized once so every retry sends the same bytes.
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.type} #{self.signal_id}"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (retries exhausted)"
    DROPPED = "dropped", "Dropped (channel paused, disabled or deleted)"


class Message(models.Model):
    """An event owed to one channel. `id` is the `webhook-id` header: the same on
    every retry and on a redelivery, so receivers can deduplicate."""

    id = models.CharField(max_length=40, primary_key=True, default=new_message_id, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="messages")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="messages")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt may start; an attempt in flight pushes it ahead (a lease).
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["channel", "event"], name="message_channel_event")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="message_due",
                         condition=models.Q(status="pending")),
        ]


class Delivery(models.Model):
    """One attempt to hand a message over: what the remote answered, how fast."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the message so "this channel's last 24 h" is one indexed range scan.
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    success = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    # Seconds until the next attempt (None: no retry follows).
    retry_in = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["channel", "-started_at"], name="delivery_channel_started")]


class BrowserPreference(models.Model):
    """Which signals raise a browser notification for this user (the dashboard reads it)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    notify = models.BooleanField(default=True)
    events = models.JSONField(default=default_events)
    markets = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    min_confidence = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class InboundToken(models.Model):
    """A secret URL part that lets an outside system (a TradingView alert) publish as
    `source` on behalf of `publisher`. Only a hash is stored; the token is shown once."""

    source = models.CharField(max_length=64)
    publisher = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so an admin can tell tokens apart without the secret.
    prefix = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.source} ({self.prefix}…){' revoked' if self.revoked_at else ''}"


class InboundResult(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    REJECTED = "rejected", "Rejected"


class InboundAlertLog(models.Model):
    """Every alert a known token sent, so the admin can see what was refused and why."""

    token = models.ForeignKey(InboundToken, on_delete=models.CASCADE, related_name="alerts")
    received_at = models.DateTimeField()
    result = models.CharField(max_length=16, choices=InboundResult.choices)
    http_status = models.PositiveSmallIntegerField()
    # alert_id when given, else the body's SHA-256: the duplicate window's key.
    dedup_key = models.CharField(max_length=200)
    signal_id = models.BigIntegerField(null=True, blank=True)
    body_excerpt = models.CharField(max_length=1000, blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["token", "dedup_key", "-received_at"], name="inbound_dedup")]
