"""Delivery receipts: the last signal id each user's dashboard acknowledged."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import UserReceipt
from ..selectors import signal_max_id


def receipt_ack(*, user, signal_id: int) -> int:
    """Raise the user's last acknowledged id to `signal_id` (never lower it; capped at
    the newest committed signal, so `unseen` cannot go negative). Returns last_ack_id."""
    if isinstance(signal_id, bool) or not isinstance(signal_id, int) or signal_id < 0:
        raise ValueError(f"A signal id is a non-negative integer, not {signal_id!r}.")
    target = min(signal_id, signal_max_id())
    now = timezone.now()
    UserReceipt.objects.filter(user=user, last_ack_id__lt=target).update(last_ack_id=target, updated_at=now)
    receipt = UserReceipt.objects.filter(user=user).first()
    if receipt is None:
        try:
            with transaction.atomic():
                receipt = UserReceipt.objects.create(user=user, last_ack_id=target)
        except IntegrityError:  # a concurrent first ack of the same user: raise theirs instead
            UserReceipt.objects.filter(user=user, last_ack_id__lt=target).update(last_ack_id=target, updated_at=now)
            receipt = UserReceipt.objects.get(user=user)
    return receipt.last_ack_id
