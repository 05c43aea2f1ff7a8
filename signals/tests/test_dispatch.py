"""signals.dispatch: receivers get the committed object under its documented name
(Django itself passes the hook as `signal=`, which would collide)."""
from __future__ import annotations

import pytest

from signals.dispatch import amendment_published, announce, signal_published

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_hands_receivers_the_committed_signal_under_the_name_signal(signal_factory):
    received = []

    def receiver(sender, signal, **kwargs):
        received.append(signal)

    signal_published.connect(receiver, weak=False, dispatch_uid="test-dispatch")
    try:
        created = signal_factory()
    finally:
        signal_published.disconnect(dispatch_uid="test-dispatch")
    assert [s.pk for s in received] == [created.pk]


def test_it_logs_a_failing_receiver_and_still_calls_the_others(caplog):
    calls = []

    def broken(sender, **kwargs):
        raise RuntimeError("boom")

    def working(sender, event, **kwargs):
        calls.append(event)

    amendment_published.connect(broken, weak=False, dispatch_uid="test-broken")
    amendment_published.connect(working, weak=False, dispatch_uid="test-working")
    try:
        announce(amendment_published, event="E")
    finally:
        amendment_published.disconnect(dispatch_uid="test-broken")
        amendment_published.disconnect(dispatch_uid="test-working")
    assert calls == ["E"]
    assert "boom" in caplog.text
