"""Delivery receipts: what a user's dashboard last displayed, and what it missed.

The dashboard sends `{"type": "ack", "id": N}` over its WebSocket; the write goes
through `signals.services.receipt_ack` (monotonic per user), throttled per
connection so a burst of signals is one write, not one per frame. `GET /api/me/`
reads the receipt back with the number of signals committed since.
"""
from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from .delivery import db_read
from .models import Signal, UserReceipt
from .services import receipt_ack

logger = logging.getLogger(__name__)


@db_read
def _write(user, signal_id: int) -> int:
    return receipt_ack(user=user, signal_id=signal_id)


class ReceiptWriter:
    """One connection's acks: the first is written at once, later ones at most once
    per WS_ACK_INTERVAL_SECONDS (the highest id wins); a pending one is still written
    after the client disconnects."""

    __slots__ = ("user", "wanted", "written", "_task")

    def __init__(self, *, user) -> None:
        self.user = user
        self.wanted = 0
        self.written = -1
        self._task: asyncio.Task | None = None

    def acknowledge(self, signal_id: int) -> None:
        self.wanted = max(self.wanted, signal_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.wanted > self.written:
            target = self.wanted
            try:
                await _write(self.user, target)
            except Exception as exc:  # noqa: BLE001 - database outage: the next ack retries
                logger.warning("could not store a delivery receipt: %r", exc)
                return
            self.written = target
            await asyncio.sleep(settings.WS_ACK_INTERVAL_SECONDS)


def receipt_summary(*, user) -> dict:
    """`{username, last_ack_id, unseen}`: unseen counts signals committed after the
    user's last acknowledged id (all of them for a user who never acknowledged)."""
    last_ack_id = UserReceipt.objects.filter(user=user).values_list("last_ack_id", flat=True).first() or 0
    return {
        "username": user.get_username(),
        "last_ack_id": last_ack_id,
        "unseen": Signal.objects.filter(id__gt=last_ack_id).count(),
    }
