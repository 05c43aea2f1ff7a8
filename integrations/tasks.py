"""Celery doors onto the delivery engine: one fan-out task per event, one delivery
task per (channel, event), and a sweep for attempts whose task was lost."""
from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from .delivery import message_attempt
from .fanout import event_fanout, signals_without_created_event
from .outbound import OutboundClient
from .selectors import messages_overdue

# One keep-alive pool per worker process, shared by its delivery tasks.
_client = OutboundClient()
# An attempt this late was lost (its task never ran): the sweep re-enqueues it.
_OVERDUE = dt.timedelta(seconds=60)


@shared_task(name="integrations.event_fanout", ignore_result=True)
def event_fanout_task(*, event_type: str, signal_id: int, outcome: dict | None = None,
                      amendment_id: int | None = None) -> int:
    """Record the event, create its messages and enqueue one delivery per channel."""
    ids = event_fanout(event_type=event_type, signal_id=signal_id, outcome=outcome, amendment_id=amendment_id)
    for message_id in ids:
        message_deliver_task.delay(message_id)
    return len(ids)


@shared_task(name="integrations.message_deliver", ignore_result=True)
def message_deliver_task(message_id: str) -> None:
    """One attempt; a failure schedules the next one with backoff (or the remote's
    retry-after) as a countdown."""
    result = message_attempt(message_id=message_id, client=_client)
    if result is not None and result.retry_in is not None:
        message_deliver_task.apply_async((message_id,), countdown=result.retry_in)


@shared_task(name="integrations.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> dict:
    """Re-enqueue overdue attempts and fan out recent signals whose fan-out was never
    enqueued (broker down at commit time)."""
    now = timezone.now()
    overdue = messages_overdue(before=now - _OVERDUE)
    for message_id in overdue:
        message_deliver_task.delay(message_id)
    missed = signals_without_created_event(since=now - dt.timedelta(hours=1), until=now - _OVERDUE)
    for signal_id in missed:
        event_fanout_task.delay(event_type="signal.created", signal_id=signal_id)
    return {"overdue": len(overdue), "missed": len(missed)}
