"""Writes: channels (with their rules per kind), redelivery, browser preferences and
inbound tokens. Doors (API, pages, admin, commands) parse types and call these."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from signals.models import Market

from .models import (
    EVENT_TYPES, BrowserPreference, Channel, ChannelKind, Event, InboundToken, Message, MessageStatus,
)
from .outbound import OutboundRefused, target_check

_TELEGRAM_TOKEN = re.compile(r"[0-9]{3,20}:[A-Za-z0-9_-]{20,100}")
_TELEGRAM_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63}")
_FILTER_FIELDS = ("events", "markets", "sources", "min_confidence", "enabled", "name")


class ChannelValidationError(Exception):
    """Bad channel settings; `errors` maps field -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class RedeliveryRefused(Exception):
    """The event cannot be redelivered to this channel (unknown event, channel off)."""


def webhook_secret_new() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_filters(values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    if "events" in values:
        events = values["events"]
        unknown = [e for e in events if e not in EVENT_TYPES]
        if not events:
            errors["events"] = [f"Choose at least one of {', '.join(EVENT_TYPES)}."]
        elif unknown:
            errors["events"] = [f"Unknown event type(s) {', '.join(map(str, unknown))}; "
                                f"use {', '.join(EVENT_TYPES)}."]
    if "markets" in values:
        unknown = [m for m in values["markets"] if m not in Market.values]
        if unknown:
            errors["markets"] = [f"Unknown market(s) {', '.join(map(str, unknown))}; "
                                 f"use {', '.join(Market.values)}."]
    if "sources" in values:
        bad = [s for s in values["sources"] if not isinstance(s, str) or not s.strip() or len(s) > 64]
        if bad:
            errors["sources"] = ["Each source is a name of 1 to 64 characters."]
    if "min_confidence" in values and not 0 <= values["min_confidence"] <= 100:
        errors["min_confidence"] = ["Must be between 0 and 100."]


def _check_target(kind: str, values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    # Blank required fields are reported by the caller; check only what was given.
    values = {k: v for k, v in values.items() if v not in (None, "")}
    if kind == ChannelKind.WEBHOOK and "url" in values:
        try:
            target_check(values["url"])
        except OutboundRefused as exc:
            errors["url"] = [f"Refused: {exc}."]
    elif kind == ChannelKind.DISCORD and "url" in values:
        base = settings.DISCORD_API_URL.rstrip("/") + "/webhooks/"
        if not values["url"].startswith(base) or len(values["url"]) <= len(base):
            errors["url"] = [f"A Discord webhook URL starts with {base}"]
    elif kind == ChannelKind.TELEGRAM:
        if "bot_token" in values and not _TELEGRAM_TOKEN.fullmatch(values["bot_token"] or ""):
            errors["bot_token"] = ["A Telegram bot token looks like 123456789:AA... (from @BotFather)."]
        if "chat_id" in values and not _TELEGRAM_CHAT.fullmatch(str(values["chat_id"] or "")):
            errors["chat_id"] = ["A chat id is a number (e.g. -1001234567890) or a @channelusername."]
        if "topic_id" in values and values["topic_id"] <= 0:
            errors["topic_id"] = ["A topic (message thread) id is a positive number."]


_REQUIRED = {
    ChannelKind.WEBHOOK: ("url",),
    ChannelKind.DISCORD: ("url",),
    ChannelKind.TELEGRAM: ("bot_token", "chat_id"),
}
_TARGET_FIELDS = {
    ChannelKind.WEBHOOK: ("url",),
    ChannelKind.DISCORD: ("url",),
    ChannelKind.TELEGRAM: ("bot_token", "chat_id", "topic_id"),
}


@dataclass(frozen=True)
class ChannelCreateResult:
    channel: Channel
    secret: str  # the webhook signing secret, to show once ("" for chat channels)


def channel_check(*, kind: str, values: dict[str, Any], creating: bool) -> dict[str, list[str]]:
    """The rules of a channel's settings: field errors (empty when valid). On an
    update only the given fields are checked."""
    if kind not in ChannelKind.values:
        return {"kind": [f"Use one of {', '.join(ChannelKind.values)}."]}
    errors: dict[str, list[str]] = {}
    for name in _REQUIRED[kind]:
        if (creating or name in values) and not values.get(name):
            errors[name] = ["This field is required." if creating else "This field may not be blank."]
    _check_target(kind, values, errors)
    _check_filters(values, errors)
    return errors


def _allowed(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    allowed = set(_TARGET_FIELDS.get(kind, ())) | set(_FILTER_FIELDS)
    return {k: v for k, v in values.items() if k in allowed}


def channel_create(*, owner, kind: str, **values: Any) -> ChannelCreateResult:
    """Validate and store a channel; a webhook gets a fresh signing secret.

    Raises ChannelValidationError with field errors.
    """
    values = _allowed(kind, values)
    errors = channel_check(kind=kind, values=values, creating=True)
    if errors:
        raise ChannelValidationError(errors)
    secret = webhook_secret_new() if kind == ChannelKind.WEBHOOK else ""
    channel = Channel.objects.create(owner=owner, kind=kind, secret=secret, **values)
    return ChannelCreateResult(channel=channel, secret=secret)


def channel_update(*, channel: Channel, **values: Any) -> Channel:
    """Change a channel's target or filters. Enabling a paused channel resumes it
    (the failing clock starts afresh). Raises ChannelValidationError."""
    values = _allowed(channel.kind, values)
    errors = channel_check(kind=channel.kind, values=values, creating=False)
    if errors:
        raise ChannelValidationError(errors)
    for name, value in values.items():
        setattr(channel, name, value)
    if values.get("enabled") is True and channel.paused_reason:
        channel.paused_reason = ""
        channel.failing_since = None
    channel.save()
    return channel


def channel_delete(*, channel: Channel) -> None:
    """Remove a channel and its delivery log (signals and events stay)."""
    channel.delete()


def message_redeliver(*, channel: Channel, event_id: int) -> Message:
    """Queue a past event for this channel again, with the same `webhook-id` when it
    was sent before and a fresh retry budget. The caller enqueues the attempt."""
    if channel.paused_reason or not channel.enabled:
        raise RedeliveryRefused("This channel is paused or disabled: enable it first.")
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        raise RedeliveryRefused(f"No event {event_id}.")
    now = timezone.now()
    with transaction.atomic():
        message, created = Message.objects.select_for_update().get_or_create(
            channel=channel, event=event, defaults={"next_attempt_at": now})
        if not created:
            message.status = MessageStatus.PENDING
            message.attempts = 0
            message.next_attempt_at = now
            message.save(update_fields=["status", "attempts", "next_attempt_at"])
    return message


def browser_preference_set(*, user, **values: Any) -> BrowserPreference:
    """Store a user's browser-notification filters. Raises ChannelValidationError."""
    errors: dict[str, list[str]] = {}
    _check_filters(values, errors)
    if errors:
        raise ChannelValidationError(errors)
    allowed = {"notify", "events", "markets", "sources", "min_confidence"}
    preference, _ = BrowserPreference.objects.update_or_create(
        user=user, defaults={k: v for k, v in values.items() if k in allowed})
    return preference


def inbound_token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def inbound_token_create(*, source: str, publisher=None) -> tuple[InboundToken, str]:
    """A new token for `source`; returns (row, the token). Only its hash is stored,
    so the token can be shown this once."""
    source = (source or "").strip()
    if not source or len(source) > 64:
        raise ChannelValidationError({"source": ["A source name of 1 to 64 characters is required."]})
    raw = "itk_" + secrets.token_urlsafe(32)
    token = InboundToken.objects.create(source=source, publisher=publisher, token_hash=inbound_token_hash(raw),
                                        prefix=raw[:10])
    return token, raw


def inbound_token_revoke(*, token: InboundToken) -> None:
    InboundToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
