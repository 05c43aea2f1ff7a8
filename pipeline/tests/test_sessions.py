"""Market sessions on known dates (Bogota is UTC-5 all year: 08:00-12:55 local is
13:00-17:55 UTC). November 2026: Mon 2 and Mon 16 are Colombian public holidays."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pipeline.sessions import UnknownMarketError, market_is_open, market_session, session_intervals

UTC = dt.timezone.utc


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("at, is_open", [
    (utc(2026, 11, 23, 12, 59, 59), False),   # Mon 07:59:59 Bogota
    (utc(2026, 11, 23, 13, 0, 0), True),      # Mon 08:00 Bogota: opens
    (utc(2026, 11, 23, 17, 54, 59), True),    # 12:54:59
    (utc(2026, 11, 23, 17, 55, 0), False),    # 12:55: closed
    (utc(2026, 11, 27, 15, 0), True),         # Friday
    (utc(2026, 11, 28, 15, 0), False),        # Saturday
    (utc(2026, 11, 29, 15, 0), False),        # Sunday
    (utc(2026, 11, 2, 15, 0), False),         # All Saints' Day (observed), a Monday
    (utc(2026, 11, 16, 15, 0), False),        # Independence of Cartagena (observed)
    (utc(2026, 12, 8, 15, 0), False),         # Immaculate Conception, a Tuesday
    (utc(2026, 12, 25, 15, 0), False),        # Christmas, a Friday
    (utc(2026, 11, 3, 13, 30), True),         # the Tuesday after the holiday
])
def test_it_knows_forex_hours_and_colombian_holidays(at, is_open):
    assert market_is_open("forex", at) is is_open


def test_it_judges_the_bogota_day_not_the_utc_day():
    # 2026-11-03 03:00 UTC is still Monday 2 November (a holiday) 22:00 in Bogota,
    # and 2026-11-24 00:30 UTC is Monday 19:30 in Bogota: closed, next open Tuesday.
    assert market_session("forex", utc(2026, 11, 3, 3, 0))["next_open"] == "2026-11-03T13:00:00Z"
    assert market_session("forex", utc(2026, 11, 24, 0, 30))["next_open"] == "2026-11-24T13:00:00Z"
    bogota = dt.datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/Bogota"))
    assert market_is_open("forex", bogota) and bogota.astimezone(UTC).hour == 13


def test_it_gives_the_next_open_over_a_weekend_and_a_monday_holiday():
    friday_evening = utc(2026, 11, 13, 18, 0)
    assert market_session("forex", friday_evening) == {
        "market": "forex", "open": False,
        "next_open": "2026-11-17T13:00:00Z", "next_close": "2026-11-17T17:55:00Z",
        "timezone": "America/Bogota",
    }
    assert market_session("forex", utc(2026, 12, 24, 18, 0))["next_open"] == "2026-12-28T13:00:00Z"


def test_it_gives_todays_close_while_open():
    session = market_session("forex", utc(2026, 11, 23, 14, 0))
    assert session["open"] is True and session["next_open"] is None
    assert session["next_close"] == "2026-11-23T17:55:00Z"
    before_open = market_session("forex", utc(2026, 11, 23, 12, 0))
    assert before_open["next_open"] == "2026-11-23T13:00:00Z"


def test_it_keeps_crypto_open_around_the_clock():
    for at in (utc(2026, 11, 28, 3, 0), utc(2026, 12, 25, 0, 0), utc(2026, 11, 2, 23, 59, 59)):
        assert market_is_open("crypto", at)
    assert market_session("crypto", utc(2026, 11, 28, 3, 0)) == {
        "market": "crypto", "open": True, "next_open": None, "next_close": None, "timezone": "UTC"}


def test_it_lists_trading_intervals_of_a_week_in_utc():
    intervals = session_intervals("forex", utc(2026, 11, 13, 14, 0), utc(2026, 11, 18, 0, 0))
    assert intervals == [
        (utc(2026, 11, 13, 14, 0), utc(2026, 11, 13, 17, 55)),   # Friday, clipped at the start
        (utc(2026, 11, 17, 13, 0), utc(2026, 11, 17, 17, 55)),   # Tuesday (Monday is a holiday)
    ]
    assert session_intervals("crypto", utc(2026, 11, 1), utc(2026, 11, 2)) == [(utc(2026, 11, 1), utc(2026, 11, 2))]


def test_it_refuses_unknown_markets_and_naive_times():
    with pytest.raises(UnknownMarketError, match="Unknown market 'stocks'"):
        market_is_open("stocks", utc(2026, 11, 23))
    with pytest.raises(ValueError, match="timezone-aware"):
        market_is_open("forex", dt.datetime(2026, 11, 23, 13, 0))
