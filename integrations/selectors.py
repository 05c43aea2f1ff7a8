"""Reads for the integrations API, pages and admin."""
from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .models import BrowserPreference, Channel, ChannelKind, Delivery, Message, MessageStatus

WEBHOOK_KINDS = (ChannelKind.WEBHOOK,)
CHAT_KINDS = (ChannelKind.TELEGRAM, ChannelKind.DISCORD)


def channel_list(*, user, kinds, everyone: bool = False) -> QuerySet[Channel]:
    """A user's channels of the given kinds (every user's for an operator asking for all)."""
    qs = Channel.objects.filter(kind__in=kinds).order_by("id")
    if not (everyone and user.is_staff):
        qs = qs.filter(owner=user)
    return qs


def channel_get(*, user, channel_id: int, kinds) -> Channel | None:
    """The channel if this user may see it: its owner, or staff (operators)."""
    qs = Channel.objects.filter(pk=channel_id, kind__in=kinds)
    if not user.is_staff:
        qs = qs.filter(owner=user)
    return qs.first()


def deliveries_recent(*, channel: Channel, hours: float = 24, failed_only: bool = False,
                      limit: int = 200) -> QuerySet[Delivery]:
    """The channel's attempts of the last `hours`, newest first."""
    since = timezone.now() - dt.timedelta(hours=hours)
    qs = Delivery.objects.filter(channel=channel, started_at__gte=since).select_related("message__event")
    if failed_only:
        qs = qs.filter(success=False)
    return qs.order_by("-started_at", "-id")[:limit]


def delivery_counts_24h(*, channel_ids) -> dict[int, dict[str, int]]:
    """{channel id: {"ok": n, "failed": n}} over the last 24 hours."""
    since = timezone.now() - dt.timedelta(hours=24)
    rows = (Delivery.objects.filter(channel_id__in=list(channel_ids), started_at__gte=since)
            .values("channel_id")
            .annotate(ok=Count("id", filter=Q(success=True)), failed=Count("id", filter=Q(success=False))))
    return {row["channel_id"]: {"ok": row["ok"], "failed": row["failed"]} for row in rows}


def messages_overdue(*, before: dt.datetime, limit: int = 1000) -> list[str]:
    """Pending messages whose next attempt should have started before `before`."""
    return list(Message.objects.filter(status=MessageStatus.PENDING, next_attempt_at__lt=before)
                .order_by("next_attempt_at").values_list("id", flat=True)[:limit])


def browser_preference_get(*, user) -> BrowserPreference:
    """The user's preferences (defaults, unsaved, when never set)."""
    return BrowserPreference.objects.filter(user=user).first() or BrowserPreference(user=user)
