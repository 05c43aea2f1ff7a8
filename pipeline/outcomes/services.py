"""Writes of the outcome tracker: an engine state persisted as outcome progress.

Every change goes through `signals.services.signal_outcome_progress`, the one
writer of outcome rows (conditional on the row still being open, forward only; it
broadcasts the `outcome` frame and `outcome_decided` on commit).
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from django.db import transaction

from signals.services import signal_outcome_progress

from .book import Tracked
from .records import outcome_record


def outcome_progress_save(*, tracked: Tracked, evaluated_until: dt.datetime | None = None) -> bool:
    """Persist one signal's state; `evaluated_until` (the tape applied to every signal
    of its symbol) may be later than the signal's own last change. Returns False when
    the row was closed elsewhere (an amendment, another tracker) or holds a later
    evaluation: the caller stops tracking it."""
    record = outcome_record(tracked.levels, tracked.state)
    record["state"]["last_event_id"] = tracked.last_event_id
    candidates = [t for t in (record["evaluated_until"], evaluated_until) if t is not None]
    if tracked.state.closed_at is None:
        record["evaluated_until"] = max(candidates, default=tracked.levels.created_at)
    else:
        # A closed outcome was evaluated up to the moment it closed, not beyond.
        record["evaluated_until"] = max(tracked.state.closed_at, record["evaluated_until"] or tracked.state.closed_at)
    return signal_outcome_progress(signal_id=tracked.signal_id, **record) is not None


def outcome_progress_save_many(batch: Sequence[tuple[Tracked, dt.datetime | None]]) -> list[bool]:
    """`outcome_progress_save` for each (tracked, evaluated_until) in ONE transaction:
    a tracker cycle's changes cost one commit, not one each (the broadcasts still go
    out per outcome, after the commit). All or nothing: on error nothing is written
    and the caller retries the batch (each write is conditional, so that is safe)."""
    with transaction.atomic():
        return [outcome_progress_save(tracked=tracked, evaluated_until=until) for tracked, until in batch]
