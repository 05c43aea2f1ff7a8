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
from asgiref.sync import async_to_sync

logger = logging.getLogger(__name__)


class _Hook(django.dispatch.Signal):
    """A django.dispatch.Signal whose payload may be called `signal`.

    Django's send_robust passes the hook itself as `signal=`, which collides with
    `signal_published(signal=<Signal>)` (a TypeError in every receiver). Receivers
    never need the hook, so ours are called with the payload only. Relies on
    Django's `_live_receivers` (stable since 5.0); signals/tests/test_dispatch.py
    fails if that changes.
    """

    def send_robust(self, sender, **named):
        if not self.receivers:
            return []
        sync_receivers, async_receivers = self._live_receivers(sender)
        responses = []
        for receiver in [*sync_receivers, *(async_to_sync(r) for r in async_receivers)]:
            try:
                responses.append((receiver, receiver(sender=sender, **named)))
            except Exception as err:  # noqa: BLE001 - robust: report, never raise
                responses.append((receiver, err))
        return responses


# kwargs: signal=<Signal>
signal_published = _Hook()
# kwargs: outcome=<SignalOutcome>
outcome_decided = _Hook()
# kwargs: event=<SignalEvent> (an amendment: move_stop, close, cancel)
amendment_published = _Hook()


def announce(hook: django.dispatch.Signal, **kwargs) -> None:
    """Send `hook` to every receiver; a failing receiver is logged, never raised,
    so one broken integration cannot stop the others or the writer."""
    for receiver, result in hook.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %r failed: %r", receiver, result)
