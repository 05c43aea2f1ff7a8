"""The one delivery engine: every channel kind is attempted, logged, retried and
paused the same way; only the request (and how success and rate limits read) differ.

An attempt first claims its message with a conditional UPDATE (due and pending), so
two workers, or a worker and the sweeper, never send one message at the same time;
the claim pushes `next_attempt_at` ahead as a lease in case the worker dies.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from .formats import discord_message, telegram_message
from .metrics import delivery_counted
from .models import Channel, ChannelKind, Delivery, Message, MessageStatus
from .outbound import HttpAnswer, OutboundClient, OutboundError, OutboundRefused

logger = logging.getLogger(__name__)

_EXCERPT = 500
_USER_AGENT = "signals-delivery/1"


@dataclass(frozen=True)
class AttemptResult:
    success: bool
    status_code: int | None
    error: str
    retry_in: float | None  # seconds until the next attempt; None: no retry follows


@dataclass(frozen=True)
class _Request:
    url: str
    body: bytes
    headers: dict[str, str]
    guard: bool  # a user-supplied URL: apply the public-address rule


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter for the retry after failed attempt `attempt`
    (1-based): base x 2^(attempt-1), capped, then x0.75-1.25 so that receivers that
    fail together are not retried in lockstep."""
    base = settings.DELIVERY_RETRY_BASE_SECONDS * (2 ** min(attempt - 1, 30))
    return min(settings.DELIVERY_RETRY_MAX_SECONDS, base) * random.uniform(0.75, 1.25)


def _webhook_request(message: Message, now: dt.datetime) -> _Request:
    body = message.event.body
    signature = Webhook(message.channel.secret).sign(msg_id=message.id, timestamp=now, data=body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        "webhook-id": message.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return _Request(url=message.channel.url, body=body.encode(), headers=headers, guard=True)


def _telegram_request(message: Message) -> _Request:
    channel, event = message.channel, message.event
    payload = telegram_message(event_type=event.type, data=event.data, site_url=settings.SITE_URL,
                               chat_id=channel.chat_id, topic_id=channel.topic_id)
    url = f"{settings.TELEGRAM_API_URL.rstrip('/')}/bot{channel.bot_token}/sendMessage"
    return _Request(url=url, body=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT}, guard=False)


def _discord_request(message: Message) -> _Request:
    channel, event = message.channel, message.event
    payload = discord_message(event_type=event.type, data=event.data, site_url=settings.SITE_URL)
    # The URL was checked to live under DISCORD_API_URL when the channel was saved.
    url = channel.url + ("&" if "?" in channel.url else "?") + "wait=true"
    return _Request(url=url, body=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
                    guard=not channel.url.startswith(settings.DISCORD_API_URL.rstrip("/") + "/"))


def _build(message: Message, now: dt.datetime) -> _Request:
    kind = message.channel.kind
    if kind == ChannelKind.WEBHOOK:
        return _webhook_request(message, now)
    if kind == ChannelKind.TELEGRAM:
        return _telegram_request(message)
    return _discord_request(message)


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _json(text: str) -> dict:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(kind: str, answer: HttpAnswer) -> float | None:
    """Seconds the remote asked us to wait (429): Telegram's parameters.retry_after,
    Discord's retry_after, else the Retry-After header."""
    body = _json(answer.text)
    if kind == ChannelKind.TELEGRAM and isinstance(body.get("parameters"), dict):
        seconds = _float(body["parameters"].get("retry_after"))
        if seconds is not None:
            return seconds
    seconds = _float(body.get("retry_after"))
    if seconds is not None:
        return seconds
    return _float(answer.headers.get("retry-after"))


def _remote_message(kind: str, answer: HttpAnswer) -> str:
    """The remote's own words about a failure (Telegram `description`, Discord `message`)."""
    body = _json(answer.text)
    for key in ("description", "message", "error"):
        if isinstance(body.get(key), str):
            return body[key]
    return ""


def _redact(text: str, channel: Channel) -> str:
    """Never store or log a secret, even when a remote echoes it."""
    for secret in (channel.bot_token, channel.secret):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _claim(message_id: str, now: dt.datetime) -> bool:
    lease = now + dt.timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS + 30)
    return bool(
        Message.objects.filter(pk=message_id, status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .update(next_attempt_at=lease, attempts=F("attempts") + 1)
    )


def _send(message: Message, client: OutboundClient,
          now: dt.datetime) -> tuple[bool, HttpAnswer | None, str, float | None]:
    """(success, answer, error, remote retry_after)."""
    channel = message.channel
    try:
        request = _build(message, now)
        answer = client.post(request.url, body=request.body, headers=request.headers, guard=request.guard)
    except OutboundRefused as exc:
        return False, None, f"refused: {exc}", None
    except OutboundError as exc:
        return False, None, str(exc), None
    if 200 <= answer.status < 300:
        if channel.kind == ChannelKind.TELEGRAM and _json(answer.text).get("ok") is False:
            return False, answer, _remote_message(channel.kind, answer) or "Telegram answered ok=false", None
        return True, answer, "", None
    retry_after = _retry_after(channel.kind, answer) if answer.status == 429 else None
    detail = _remote_message(channel.kind, answer)
    error = f"HTTP {answer.status}" + (f": {detail}" if detail else "")
    return False, answer, error, retry_after


def message_attempt(*, message_id: str, client: OutboundClient, now: dt.datetime | None = None) -> AttemptResult | None:
    """Make one delivery attempt of a due, pending message and record it.

    Returns the result, or None when the message was not ours to send (already
    delivered, not due, or another worker holds it). Never raises for a remote's
    failure: that is recorded and retried.
    """
    now = now or timezone.now()
    if not _claim(message_id, now):
        return None
    message = Message.objects.select_related("channel", "event").get(pk=message_id)
    channel = message.channel
    if not channel.enabled or channel.paused_reason:
        Message.objects.filter(pk=message_id).update(status=MessageStatus.DROPPED)
        return AttemptResult(success=False, status_code=None, error="channel disabled or paused", retry_in=None)

    success, answer, error, retry_after = _send(message, client, now)
    error = _redact(error, channel)[:_EXCERPT]
    if success:
        retry_in = None
    elif message.attempts >= settings.DELIVERY_MAX_ATTEMPTS:
        retry_in = None
    elif retry_after is not None:
        # The remote said when; wait at least that long, plus a little jitter.
        retry_in = retry_after + random.uniform(0, min(1.0, retry_after * 0.1) + 0.01)
    else:
        retry_in = backoff_seconds(message.attempts)
    with transaction.atomic():
        Delivery.objects.create(
            message=message, channel=channel, attempt=message.attempts, started_at=now, success=success,
            status_code=answer.status if answer else None, latency_ms=answer.latency_ms if answer else None,
            response_excerpt=_redact(answer.text, channel)[:_EXCERPT] if answer else "", error=error,
            retry_in=retry_in,
        )
        if success:
            Message.objects.filter(pk=message_id).update(status=MessageStatus.DELIVERED, delivered_at=now)
            if channel.failing_since is not None:
                Channel.objects.filter(pk=channel.pk).update(failing_since=None)
        else:
            if retry_in is None:
                Message.objects.filter(pk=message_id).update(status=MessageStatus.FAILED)
            else:
                Message.objects.filter(pk=message_id).update(next_attempt_at=now + dt.timedelta(seconds=retry_in))
            _note_failure(channel=channel, now=now, error=error)
    result = "success" if success else ("rate_limited" if retry_after is not None else "failure")
    delivery_counted(kind=channel.kind, result=result)
    if not success:
        logger.info("delivery %s to %s #%s attempt %s failed: %s", message_id, channel.kind, channel.pk,
                    message.attempts, error)
    return AttemptResult(success=success, status_code=answer.status if answer else None, error=error,
                         retry_in=retry_in)


def _note_failure(*, channel: Channel, now: dt.datetime, error: str) -> None:
    """Start the failing clock, or pause the channel once it has failed for a day."""
    Channel.objects.filter(pk=channel.pk, failing_since__isnull=True).update(failing_since=now)
    since = Channel.objects.filter(pk=channel.pk).values_list("failing_since", flat=True).first()
    if since is None or now - since < dt.timedelta(seconds=settings.DELIVERY_PAUSE_AFTER_SECONDS):
        return
    hours = (now - since).total_seconds() / 3600
    reason = (f"Paused {now:%Y-%m-%d %H:%M} UTC: every delivery failed for {hours:.0f} h "
              f"(since {since:%Y-%m-%d %H:%M} UTC). Last error: {error}")[:500]
    paused = Channel.objects.filter(pk=channel.pk, paused_reason="").update(paused_reason=reason)
    if paused:
        Message.objects.filter(channel_id=channel.pk, status=MessageStatus.PENDING).update(
            status=MessageStatus.DROPPED)
        logger.warning("channel %s #%s paused after failing since %s", channel.kind, channel.pk, since)
