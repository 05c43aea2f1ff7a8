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

from .book import OutcomeBook, Tracked, evaluated_ms, ms_of
from .engine import apply_expiry
from .records import outcome_record
from .selectors import candles_between, close_before, events_after, outcomes_open


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


def outcomes_expire_overdue(*, now: dt.datetime, grace_seconds: float = 300.0) -> int:
    """Decide open signals whose expiry passed more than `grace_seconds` ago: the safety
    net for when no feed process ran (a running tracker expires within seconds). The
    minutes between the stored evaluation and the expiry are decided by 1m candles
    first, with the amendments made meanwhile (a level reached before the expiry wins);
    what is still open expires at the last price before expiry. Returns how many
    outcomes it wrote."""
    overdue = outcomes_open(expired_before=now - dt.timedelta(seconds=grace_seconds))
    if not overdue:
        return 0
    events: dict[int, list] = {}
    for row in events_after(after_id=0, signal_ids=[t.signal_id for t in overdue]):
        events.setdefault(row.signal_id, []).append(row.as_tape())
    book = OutcomeBook()
    for tracked in overdue:
        expires_ms = ms_of(tracked.levels.expires_at)
        # Up to the minute that contains the expiry (the engine expires at its close).
        candles = candles_between(symbol=tracked.symbol, after_ms=evaluated_ms(tracked),
                                  before_ms=expires_ms + 60_000)
        book.replay(tracked, candles=candles, events=[e for e in events.get(tracked.signal_id, [])
                                                      if e[0] > tracked.last_event_id and e[2] <= tracked.levels.expires_at])
        price = tracked.state.last_price
        if price is None:
            price = close_before(symbol=tracked.symbol, at=tracked.levels.expires_at)
        apply_expiry(tracked.levels, tracked.state, price=price)
    saved = outcome_progress_save_many([(tracked, None) for tracked in overdue])
    return sum(saved)
