"""In-process notifications of committed facts, for apps that build on `signals`.

Apps depend one way (they import `signals`, never the reverse), so `signals` cannot
call an integration (webhooks, chat channels) directly. It announces what was
committed here instead, always from `transaction.on_commit`, and those apps connect
receivers in their AppConfig.ready(). A receiver must be quick and must not raise
(enqueue a Celery task and return): the write is already committed.
"""
from __future__ import annotations

import logging

import django.dispatch

logger = logging.getLogger(__name__)

# kwargs: signal=<Signal>
signal_published = django.dispatch.Signal()
# kwargs: outcome=<SignalOutcome>
outcome_decided = django.dispatch.Signal()
# kwargs: event=<SignalEvent> (an amendment: move_stop, close, cancel)
amendment_published = django.dispatch.Signal()


def announce(hook: django.dispatch.Signal, **kwargs) -> None:
    """Send `hook` to every receiver; a failing receiver is logged, never raised,
    so one broken integration cannot stop the others or the writer."""
    for receiver, result in hook.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %r failed: %r", receiver, result)
