"""Readiness per market: is the data good enough to generate signals from?

A market moves WAITING_DATA -> CHECKING_DATA -> READY -> ACTIVE (with ERROR and
STOPPED reachable from anywhere) and the state plus a human reason is stored, so
the admin, /health/ and `pipeline_status` can say *why* a market is not live.
`readiness_evaluate` is the pure rule (freshness + completeness inside the market's
session); `readiness_check` gathers its inputs from the database.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .aggregation import MINUTE_MS, expected_buckets
from .candle_sql import dt_to_ms
from .models import MarketReadiness, ReadinessState
from .selectors import feed_instruments, minute_newest, minute_open_times
from .sessions import known_markets, market_is_open, market_session, session_intervals

__all__ = [
    "ReadinessState", "ReadinessTransitionError", "SymbolData", "readiness_check", "readiness_evaluate",
    "readiness_get", "readiness_set",
]

S = ReadinessState
# Allowed moves. Staying in the same state is always allowed (it refreshes the reason).
TRANSITIONS: dict[str, frozenset[str]] = {
    S.WAITING_DATA: frozenset({S.CHECKING_DATA, S.ERROR, S.STOPPED}),
    S.CHECKING_DATA: frozenset({S.READY, S.WAITING_DATA, S.ERROR, S.STOPPED}),
    S.READY: frozenset({S.ACTIVE, S.CHECKING_DATA, S.WAITING_DATA, S.ERROR, S.STOPPED}),
    S.ACTIVE: frozenset({S.CHECKING_DATA, S.WAITING_DATA, S.ERROR, S.STOPPED}),
    S.ERROR: frozenset({S.WAITING_DATA, S.CHECKING_DATA, S.STOPPED}),
    S.STOPPED: frozenset({S.WAITING_DATA, S.CHECKING_DATA}),
}


class ReadinessTransitionError(ValueError):
    """A state change the state machine does not allow."""


def _known_market(market: str) -> str:
    if market not in known_markets():
        raise ValueError(f"Unknown market '{market}': must be one of {', '.join(known_markets())}.")
    return market


def readiness_set(*, market: str, state: ReadinessState | str, reason: str) -> MarketReadiness:
    """Move `market` to `state` with a reason; raises ReadinessTransitionError when
    the move is not allowed. Row-locked, so two workers cannot interleave moves."""
    _known_market(market)
    state = ReadinessState(state)
    with transaction.atomic():
        row, _ = MarketReadiness.objects.get_or_create(
            market=market, defaults={"state": S.WAITING_DATA, "reason": "", "updated_at": timezone.now()}
        )
        row = MarketReadiness.objects.select_for_update().get(pk=row.pk)
        if state != row.state and state not in TRANSITIONS[row.state]:
            raise ReadinessTransitionError(f"{market}: {row.state} -> {state} is not allowed.")
        row.state, row.reason, row.updated_at = state, reason[:2000], timezone.now()
        row.save(update_fields=["state", "reason", "updated_at"])
    return row


def readiness_get(*, market: str) -> tuple[ReadinessState, str, dt.datetime | None]:
    """(state, reason, updated_at); a market never set is WAITING_DATA."""
    _known_market(market)
    row = MarketReadiness.objects.filter(market=market).first()
    if row is None:
        return S.WAITING_DATA, "not checked yet", None
    return ReadinessState(row.state), row.reason, row.updated_at


@dataclass(frozen=True)
class SymbolData:
    symbol: str
    newest_age_seconds: float | None   # None: no candle at all
    present: int                       # 1m candles found among the expected ones
    expected: int                      # 1m candles the session says should exist


def readiness_evaluate(symbols: list[SymbolData], *, max_age_seconds: float, min_completeness: float
                       ) -> tuple[bool, str]:
    """Pure rule: every symbol fresh (newest candle younger than max_age_seconds) and
    complete (present / expected >= min_completeness; no expected minute counts as
    complete). Returns (ok, reason)."""
    if not symbols:
        return False, "no active instruments to check"
    problems, notes = [], []
    for s in symbols:
        if s.newest_age_seconds is None:
            problems.append(f"{s.symbol}: no candles yet")
            continue
        completeness = s.present / s.expected if s.expected else 1.0
        if s.newest_age_seconds > max_age_seconds:
            problems.append(f"{s.symbol}: newest candle {s.newest_age_seconds:.0f}s old (max {max_age_seconds:.0f}s)")
        if completeness < min_completeness:
            problems.append(f"{s.symbol}: {s.present}/{s.expected} 1m candles "
                            f"({completeness:.0%} < {min_completeness:.0%})")
        notes.append(f"{s.symbol} {s.present}/{s.expected}, {s.newest_age_seconds:.0f}s old")
    if problems:
        return False, "; ".join(problems)
    return True, "fresh and complete: " + "; ".join(notes)


def readiness_check(*, market: str, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Freshness and completeness of `market`'s data at `now`, over the last
    READINESS_WINDOW_MINUTES full minutes, counting only minutes inside the session."""
    _known_market(market)
    now = now or timezone.now()
    if not market_is_open(market, now):
        session = market_session(market, now)
        return False, f"market closed (next open {session['next_open']})"
    now_ms = dt_to_ms(now)
    until = now_ms - now_ms % MINUTE_MS
    since = until - settings.READINESS_WINDOW_MINUTES * MINUTE_MS
    intervals = [(dt_to_ms(lo), dt_to_ms(hi)) for lo, hi in session_intervals(
        market, now - dt.timedelta(milliseconds=now_ms - since), now)]
    expected = set(expected_buckets(intervals, MINUTE_MS, since, until))
    data = []
    for instrument in feed_instruments(market=market):
        newest = minute_newest(instrument_id=instrument.id)
        present = minute_open_times(instrument_id=instrument.id, since_ms=since, until_ms=until) & expected
        age = None if newest is None else max(0.0, (now_ms - max(newest)) / 1000)
        data.append(SymbolData(instrument.symbol, age, len(present), len(expected)))
    return readiness_evaluate(
        data,
        max_age_seconds=settings.READINESS_MAX_CANDLE_AGE_SECONDS,
        min_completeness=settings.READINESS_MIN_COMPLETENESS,
    )
