"""Readiness: the state machine, the pure freshness/completeness rule, and the check
against stored candles (session-aware), plus the market-data health component."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pipeline.aggregation import MINUTE_MS, dt_to_ms
from pipeline.models import MarketReadiness, ReadinessState
from pipeline.readiness import ReadinessTransitionError, SymbolData, readiness_evaluate, readiness_path
from pipeline.selectors import (
    market_data_health,
    market_updates_since,
    newest_candle_age_seconds,
    readiness_check,
    readiness_get,
)
from pipeline.services import klines_ingest, readiness_move, readiness_set
from pipeline.market_data import Kline

UTC = dt.timezone.utc
# Monday 23 November 2026, 10:30:20 in Bogota: the forex session opened 150 minutes ago.
NOW = dt.datetime(2026, 11, 23, 15, 30, 20, tzinfo=UTC)
NOW_MS = dt_to_ms(NOW)
MINUTE_NOW = NOW_MS - NOW_MS % MINUTE_MS


@pytest.fixture(autouse=True)
def window(settings, instruments):
    settings.READINESS_WINDOW_MINUTES = 60
    settings.READINESS_MAX_CANDLE_AGE_SECONDS = 180
    settings.READINESS_MIN_COMPLETENESS = 0.95
    settings.FEED_SYMBOLS = ["BTCUSDT", "USDCOP"]


def minutes(symbol: str, starts) -> None:
    klines_ingest(klines=[Kline(symbol, "1m", s, Decimal(1), Decimal(2), Decimal(1), Decimal(2), Decimal(1), 1, True)
                          for s in starts])


def last_minutes(n: int, *, skip=(), end: int = MINUTE_NOW) -> list[int]:
    return [end - i * MINUTE_MS for i in range(1, n + 1) if i not in skip]


@pytest.mark.django_db
def test_it_walks_the_happy_path_and_records_the_reason():
    assert readiness_get(market="crypto") == (ReadinessState.WAITING_DATA, "not checked yet", None)
    for state in ("CHECKING_DATA", "READY", "ACTIVE"):
        readiness_set(market="crypto", state=state, reason=f"now {state}")
    state, reason, updated_at = readiness_get(market="crypto")
    assert (state, reason) == (ReadinessState.ACTIVE, "now ACTIVE") and updated_at is not None
    assert MarketReadiness.objects.get(market="crypto").state == "ACTIVE"


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    ["READY"],                                # must check first
    ["ACTIVE"],
    ["CHECKING_DATA", "ACTIVE"],              # READY comes before ACTIVE
    ["STOPPED", "READY"],
    ["ERROR", "ACTIVE"],
])
def test_it_refuses_illegal_moves(path):
    *before, illegal = path
    for state in before:
        readiness_set(market="forex", state=state, reason="")
    with pytest.raises(ReadinessTransitionError, match=f"-> {illegal} is not allowed"):
        readiness_set(market="forex", state=illegal, reason="skip")
    assert readiness_get(market="forex")[0] == (before[-1] if before else "WAITING_DATA")


@pytest.mark.django_db
def test_it_allows_error_and_stop_from_anywhere_and_refreshing_a_reason():
    readiness_set(market="crypto", state="CHECKING_DATA", reason="")
    readiness_set(market="crypto", state="ERROR", reason="REST down")
    readiness_set(market="crypto", state="ERROR", reason="REST still down")
    readiness_set(market="crypto", state="STOPPED", reason="shutdown")
    assert readiness_get(market="crypto")[1] == "shutdown"
    with pytest.raises(ValueError, match="Unknown market"):
        readiness_set(market="stocks", state="READY", reason="")


def test_it_evaluates_freshness_and_completeness_purely():
    ok, reason = readiness_evaluate([SymbolData("BTCUSDT", 30, 58, 60)], max_age_seconds=180, min_completeness=0.95)
    assert ok and "58/60" in reason
    ok, reason = readiness_evaluate([SymbolData("BTCUSDT", 200, 56, 60), SymbolData("ETHUSDT", None, 0, 60)],
                                    max_age_seconds=180, min_completeness=0.95)
    assert not ok
    assert "BTCUSDT: newest candle 200s old (max 180s)" in reason
    assert "BTCUSDT: 56/60 1m candles (93% < 95%)" in reason and "ETHUSDT: no candles yet" in reason
    assert readiness_evaluate([SymbolData("X", 1, 0, 0)], max_age_seconds=180, min_completeness=0.95)[0]
    assert readiness_evaluate([], max_age_seconds=180, min_completeness=0.95) == (False, "no active instruments to check")


@pytest.mark.django_db
def test_it_is_ready_with_fresh_and_nearly_complete_candles():
    minutes("BTCUSDT", last_minutes(60, skip={17, 42, 43}))   # 57 of 60 = 95%
    ok, reason = readiness_check(market="crypto", now=NOW)
    assert ok, reason


@pytest.mark.django_db
def test_it_is_not_ready_below_the_completeness_threshold():
    minutes("BTCUSDT", last_minutes(60, skip={5, 6, 7, 8}))
    ok, reason = readiness_check(market="crypto", now=NOW)
    assert not ok and "BTCUSDT: 56/60 1m candles (93% < 95%)" in reason


@pytest.mark.django_db
def test_it_is_not_ready_when_the_newest_candle_is_stale():
    minutes("BTCUSDT", last_minutes(60, end=MINUTE_NOW - 5 * MINUTE_MS))
    ok, reason = readiness_check(market="crypto", now=NOW)
    assert not ok and "newest candle 320s old" in reason


@pytest.mark.django_db
def test_it_counts_only_session_minutes_for_forex():
    # 08:31:05 Bogota: the session is 31 minutes old, so only 31 full minutes (08:00
    # to 08:30) are expected even though the window is 60 minutes.
    now = dt.datetime(2026, 11, 23, 13, 31, 5, tzinfo=UTC)
    now_minute = dt_to_ms(now) - dt_to_ms(now) % MINUTE_MS
    minutes("USDCOP", last_minutes(31, end=now_minute))
    ok, reason = readiness_check(market="forex", now=now)
    assert ok and "31/31" in reason
    ok, reason = readiness_check(market="forex", now=dt.datetime(2026, 11, 23, 18, 0, tzinfo=UTC))
    assert not ok and reason == "market closed (next open 2026-11-24T13:00:00Z)"


@pytest.mark.django_db
def test_it_reports_market_data_health_for_open_markets_only():
    minutes("BTCUSDT", last_minutes(3))
    newest_age = newest_candle_age_seconds(symbol="BTCUSDT", now=NOW)
    assert newest_age == pytest.approx(20.001, abs=0.01)   # the newest kline ended at MINUTE_NOW
    health = market_data_health(now=NOW)
    # USDCOP trades in this session too but has no candles: degraded, not down.
    assert health["status"] == "degraded" and "USDCOP" in health["detail"]
    assert health["markets"]["crypto"]["symbols"]["BTCUSDT"]["fresh"] is True
    assert health["markets"]["forex"]["readiness"]["state"] == "WAITING_DATA"
    saturday = NOW + dt.timedelta(days=5)
    health = market_data_health(now=saturday)
    assert health["status"] == "down" and health["markets"]["forex"]["open"] is False
    minutes("USDCOP", last_minutes(2))
    assert market_data_health(now=NOW)["status"] == "ok"
    readiness_set(market="crypto", state="ERROR", reason="exchange unreachable")
    assert market_data_health(now=NOW)["status"] == "degraded"


@pytest.mark.django_db
def test_it_counts_market_updates_per_market():
    minutes("BTCUSDT", last_minutes(5))
    minutes("USDCOP", last_minutes(2))
    since = dt.datetime.fromtimestamp((MINUTE_NOW - 4 * MINUTE_MS) / 1000, UTC)
    assert market_updates_since(since=since) == {"crypto": 4, "forex": 2}


def test_it_finds_the_shortest_legal_route_between_readiness_states():
    S = ReadinessState
    assert readiness_path(S.ERROR, S.READY) == [S.CHECKING_DATA, S.READY]
    assert readiness_path(S.WAITING_DATA, S.ACTIVE) == [S.CHECKING_DATA, S.READY, S.ACTIVE]
    assert readiness_path(S.ACTIVE, S.ACTIVE) == []
    with pytest.raises(ValueError, match="no legal path"):
        readiness_path(S.ACTIVE, S.READY, {S.ACTIVE: frozenset()})


@pytest.mark.django_db
def test_it_moves_readiness_through_every_legal_step_and_keeps_a_live_markets_first_reason():
    S = ReadinessState
    assert readiness_move(market="crypto", target=S.ACTIVE, reason="streaming") == [
        ("WAITING_DATA", "CHECKING_DATA"), ("CHECKING_DATA", "READY"), ("READY", "ACTIVE")]
    assert readiness_get(market="crypto")[:2] == (S.ACTIVE, "streaming")
    assert readiness_move(market="crypto", target=S.ACTIVE, reason="streaming, 3s old") == []
    assert readiness_get(market="crypto")[1] == "streaming"
    # A move meant only for a market just starting is skipped for a live one.
    assert readiness_move(market="crypto", target=S.CHECKING_DATA, reason="x",
                          only_from=(S.WAITING_DATA, S.STOPPED)) == []
    assert readiness_move(market="crypto", target=S.ERROR, reason="stale") == [("ACTIVE", "ERROR")]
    assert readiness_move(market="crypto", target=S.ERROR, reason="still stale") == [("ERROR", "ERROR")]
    assert readiness_get(market="crypto")[1] == "still stale"
