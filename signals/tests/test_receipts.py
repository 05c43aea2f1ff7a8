"""receipt_ack: each user's last acknowledged signal id only moves up, and never
past the newest committed signal."""
from __future__ import annotations

import pytest

from signals.models import UserReceipt
from signals.services import receipt_ack

pytestmark = pytest.mark.django_db


def test_it_keeps_the_highest_acknowledged_id(signal_factory, reader_user):
    ids = [signal_factory().pk for _ in range(3)]
    assert receipt_ack(user=reader_user, signal_id=ids[1]) == ids[1]
    assert receipt_ack(user=reader_user, signal_id=ids[0]) == ids[1]
    assert receipt_ack(user=reader_user, signal_id=ids[2]) == ids[2]
    assert UserReceipt.objects.get(user=reader_user).last_ack_id == ids[2]


def test_it_caps_an_ack_at_the_newest_signal(signal_factory, reader_user):
    newest = signal_factory().pk
    assert receipt_ack(user=reader_user, signal_id=newest + 1000) == newest


def test_it_keeps_receipts_per_user(signal_factory, reader_user, staff_user):
    first, second = signal_factory().pk, signal_factory().pk
    receipt_ack(user=reader_user, signal_id=first)
    receipt_ack(user=staff_user, signal_id=second)
    assert dict(UserReceipt.objects.values_list("user__username", "last_ack_id")) == {
        "reader": first, "staff": second}


@pytest.mark.parametrize("bad", [-1, "5", 1.5, True, None])
def test_it_refuses_an_id_that_is_not_a_non_negative_integer(reader_user, bad):
    with pytest.raises(ValueError):
        receipt_ack(user=reader_user, signal_id=bad)
    assert not UserReceipt.objects.exists()
