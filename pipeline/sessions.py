"""Market hours: when each market trades, so the pipeline neither streams, polls,
backfills nor judges freshness outside a market's session.

Pure: every function takes the instant to judge and returns data; nothing here
reads the clock or the database. Crypto trades around the clock. Forex (USDCOP)
trades Monday to Friday 08:00-12:55 in Bogota, except on Colombian public holidays.
Bogota keeps UTC-5 all year (no DST), so an open at 08:00 local is 13:00 UTC.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from signals.times import iso_utc

UTC = dt.timezone.utc
# How far ahead to look for the next open: longer than any run of holidays plus a
# weekend, short enough that a bad configuration cannot loop for long.
_MAX_DAYS_AHEAD = 30


@dataclass(frozen=True)
class _DailySession:
    timezone: str
    opens: dt.time
    closes: dt.time
    weekdays: frozenset[int]      # Monday = 0
    holiday_country: str | None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# market -> None for a 24/7 market, else its daily session.
SESSIONS: dict[str, _DailySession | None] = {
    "crypto": None,
    "forex": _DailySession(
        timezone="America/Bogota",
        opens=dt.time(8, 0),
        closes=dt.time(12, 55),
        weekdays=frozenset(range(5)),
        holiday_country="CO",
    ),
}


class UnknownMarketError(ValueError):
    """The market name is not one of SESSIONS."""


def known_markets() -> tuple[str, ...]:
    return tuple(SESSIONS)


def _session(market: str) -> _DailySession | None:
    try:
        return SESSIONS[market]
    except KeyError:
        raise UnknownMarketError(
            f"Unknown market '{market}': must be one of {', '.join(SESSIONS)}."
        ) from None


def _aware(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("A timezone-aware datetime is required.")
    return at


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def _is_trading_day(session: _DailySession, day: dt.date) -> bool:
    if day.weekday() not in session.weekdays:
        return False
    return not (session.holiday_country and day in _holidays(session.holiday_country, day.year))


def _day_bounds(session: _DailySession, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = session.zone
    return (
        dt.datetime.combine(day, session.opens, tzinfo=zone),
        dt.datetime.combine(day, session.closes, tzinfo=zone),
    )


def market_is_open(market: str, at: dt.datetime) -> bool:
    """True when `market` trades at the instant `at` (aware datetime)."""
    session = _session(market)
    if session is None:
        return True
    local = _aware(at).astimezone(session.zone)
    if not _is_trading_day(session, local.date()):
        return False
    return session.opens <= local.time() < session.closes


def session_intervals(market: str, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The trading intervals of `market` intersected with [start, end), in UTC,
    oldest first. A 24/7 market gives the whole window."""
    start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
    if end <= start:
        return []
    session = _session(market)
    if session is None:
        return [(start, end)]
    zone = session.zone
    day = start.astimezone(zone).date()
    last_day = end.astimezone(zone).date()
    intervals = []
    while day <= last_day:
        if _is_trading_day(session, day):
            opens, closes = _day_bounds(session, day)
            lo, hi = max(opens.astimezone(UTC), start), min(closes.astimezone(UTC), end)
            if lo < hi:
                intervals.append((lo, hi))
        day += dt.timedelta(days=1)
    return intervals


def _next_session(session: _DailySession, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The first session (open, close) whose close is after `at`."""
    day = at.astimezone(session.zone).date()
    for _ in range(_MAX_DAYS_AHEAD + 1):
        if _is_trading_day(session, day):
            opens, closes = _day_bounds(session, day)
            if closes > at:
                return opens, closes
        day += dt.timedelta(days=1)
    return None


def market_session(market: str, at: dt.datetime) -> dict[str, Any]:
    """`{"market", "open", "next_open", "next_close", "timezone"}` at the instant `at`.

    While open: next_open is null and next_close is today's close. While closed:
    the next session's open and close. A 24/7 market is always open with both null.
    Times are ISO 8601 UTC; `timezone` names the zone the session is defined in.
    """
    session = _session(market)
    at = _aware(at)
    if session is None:
        return {"market": market, "open": True, "next_open": None, "next_close": None, "timezone": "UTC"}
    is_open = market_is_open(market, at)
    upcoming = _next_session(session, at)
    next_open = next_close = None
    if upcoming is not None:
        opens, closes = upcoming
        next_close = closes
        next_open = None if is_open else opens
    return {
        "market": market,
        "open": is_open,
        "next_open": iso_utc(next_open),
        "next_close": iso_utc(next_close),
        "timezone": session.timezone,
    }
