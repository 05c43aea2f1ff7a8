"""Receivers of `signals.dispatch`: each committed fact becomes one fan-out task.

They run inside the writer's on_commit, so they only enqueue (never query or send):
the writer must not wait for webhooks. If the broker cannot take the task, the
sweep task (`integrations.deliveries_sweep`) fans out recent signals it finds
without a `signal.created` event.

Nor does the writer wait for the broker: the task is handed to one background
thread per process, which enqueues in commit order. A broker round trip through
kombu cost ~1 ms of a ~8 ms `POST /api/signals/` (bench/fanout.py --e2e). Queued
hand-offs are flushed when the process exits normally; one killed in the same
millisecond loses them, which the sweep covers as it covers a broker outage. Under
CELERY_TASK_ALWAYS_EAGER (tests, single-process setups) the task runs inline.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from signals.dispatch import amendment_published, outcome_decided, signal_published
from signals.selectors import outcome_payload

from .models import EventType
from .tasks import event_fanout_task

logger = logging.getLogger(__name__)

# The writer must not hang on a broker outage: try briefly, then leave it to the sweep.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2}


# (pid, executor): a forked child (Celery's prefork pool) must not reuse the parent's
# executor, whose thread did not survive the fork.
_handoff: tuple[int, ThreadPoolExecutor] | None = None


def _handoff_executor() -> ThreadPoolExecutor:
    global _handoff
    if _handoff is None or _handoff[0] != os.getpid():
        _handoff = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="fanout-enqueue"))
    return _handoff[1]


def _send(kwargs: dict) -> None:
    try:
        event_fanout_task.apply_async(kwargs=kwargs, retry=True, retry_policy=_PUBLISH_RETRY)
    except Exception as exc:  # noqa: BLE001 - a broker outage must not reach the writer
        logger.warning("could not enqueue %s fan-out for signal %s: %r", kwargs.get("event_type"),
                       kwargs.get("signal_id"), exc)


def _enqueue(**kwargs) -> None:
    if event_fanout_task.app.conf.task_always_eager:
        _send(kwargs)
        return
    _handoff_executor().submit(_send, kwargs)


def on_signal_published(sender, signal, **kwargs) -> None:
    _enqueue(event_type=EventType.CREATED.value, signal_id=signal.id)


def on_outcome_decided(sender, outcome, **kwargs) -> None:
    _enqueue(event_type=EventType.OUTCOME.value, signal_id=outcome.signal_id, outcome=outcome_payload(outcome))


def on_amendment_published(sender, event, **kwargs) -> None:
    _enqueue(event_type=EventType.AMENDED.value, signal_id=event.signal_id, amendment_id=event.id)


def connect() -> None:
    signal_published.connect(on_signal_published, dispatch_uid="integrations.signal_published")
    outcome_decided.connect(on_outcome_decided, dispatch_uid="integrations.outcome_decided")
    amendment_published.connect(on_amendment_published, dispatch_uid="integrations.amendment_published")
