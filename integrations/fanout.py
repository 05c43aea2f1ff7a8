"""From a committed fact to the messages owed: record the event once, pick the
channels whose filters accept it, create one message per channel.

Safe to run twice: the event is unique on its key and the message on (channel,
event), so a retried fan-out task finds what the first run made and sends nothing
twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from django.db import transaction
from django.utils import timezone

from signals.models import Signal, SignalEvent
from signals.selectors import event_payload, signal_payload

from .formats import webhook_body
from .models import Channel, Event, EventType, Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    events: list[str]
    markets: list[str]
    sources: list[str]
    min_confidence: int


def filters_accept(filters: Filters, *, event_type: str, market: str, source: str, confidence: int) -> bool:
    """Whether a subscription's filters let this event through (empty list = all)."""
    return (
        event_type in filters.events
        and (not filters.markets or market in filters.markets)
        and (not filters.sources or source in filters.sources)
        and confidence >= filters.min_confidence
    )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def event_record(*, event_type: str, signal_id: int, outcome: dict[str, Any] | None = None,
                 amendment_id: int | None = None) -> Event:
    """Store the event (once per fact) with the signal as it is now; `outcome` is the
    outcome as it was announced, so two quick changes stay two events."""
    if event_type not in EventType.values:
        raise ValueError(f"unknown event type {event_type!r}")
    signal = Signal.objects.select_related("outcome").get(pk=signal_id)
    data: dict[str, Any] = {"signal": signal_payload(signal)}
    if event_type == EventType.CREATED:
        key = f"{event_type}:{signal_id}"
    elif event_type == EventType.OUTCOME:
        if outcome is not None:
            data["signal"]["outcome"] = outcome
        key = f"{event_type}:{signal_id}:{_digest(data['signal']['outcome'])}"
    else:
        amendment = SignalEvent.objects.select_related("created_by").get(pk=amendment_id, signal_id=signal_id)
        data["event"] = event_payload(amendment)
        key = f"{event_type}:{amendment_id}"
    existing = Event.objects.filter(key=key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    event, _ = Event.objects.get_or_create(
        key=key,
        defaults=dict(type=event_type, signal_id=signal_id, symbol=signal.symbol, market=signal.market,
                      source=signal.source, confidence=signal.confidence, data=data, created_at=now,
                      body=webhook_body(event_type=event_type, timestamp=now, data=data)),
    )
    return event


def channels_matching(event: Event) -> list[Channel]:
    """Routable channels whose filters accept the event. The indexed query narrows by
    state and confidence; the list filters (JSON, any database) are checked here."""
    candidates = Channel.objects.filter(enabled=True, paused_reason="", min_confidence__lte=event.confidence)
    return [
        channel for channel in candidates.only("id", "events", "markets", "sources", "min_confidence")
        if filters_accept(
            Filters(channel.events, channel.markets, channel.sources, channel.min_confidence),
            event_type=event.type, market=event.market, source=event.source, confidence=event.confidence,
        )
    ]


def messages_create(*, event: Event, channels: Iterable[Channel]) -> list[str]:
    """One pending message per channel (existing ones kept); returns the ids of the
    messages still waiting for their first attempt."""
    now = timezone.now()
    with transaction.atomic():
        Message.objects.bulk_create(
            [Message(channel_id=channel.pk, event=event, next_attempt_at=now) for channel in channels],
            ignore_conflicts=True, batch_size=500,
        )
    return list(Message.objects.filter(event=event, status="pending", attempts=0).values_list("id", flat=True))


def event_fanout(*, event_type: str, signal_id: int, outcome: dict[str, Any] | None = None,
                 amendment_id: int | None = None) -> list[str]:
    """Record the event and create its messages; returns message ids to attempt
    (none for a signal or amendment this database does not hold)."""
    try:
        event = event_record(event_type=event_type, signal_id=signal_id, outcome=outcome,
                             amendment_id=amendment_id)
    except (Signal.DoesNotExist, SignalEvent.DoesNotExist):
        # Only a task queued against another database (a shared broker) gets here;
        # retrying could never succeed.
        logger.warning("fan-out of %s skipped: signal %s / amendment %s not found", event_type, signal_id,
                       amendment_id)
        return []
    return messages_create(event=event, channels=channels_matching(event))


def signals_without_created_event(*, since, until) -> list[int]:
    """Ids of signals created in [since, until) that no `signal.created` event records
    (their fan-out was never enqueued). Bounded by the created_at index."""
    recent = Signal.objects.filter(created_at__gte=since, created_at__lt=until).values_list("id", flat=True)
    recorded = set(Event.objects.filter(type=EventType.CREATED, signal_id__in=list(recent))
                   .values_list("signal_id", flat=True))
    return [signal_id for signal_id in recent if signal_id not in recorded]
