"""The live tracker against the real database: exact trade decisions persisted once,
signals and amendments picked up between trades, candles for unstreamed time,
expiry without trades, and a restart that changes nothing."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from pipeline.outcomes.book import at_of, ms_of
from pipeline.outcomes.engine import apply_trade, levels_build, state_new
from pipeline.outcomes.records import outcome_record
from pipeline.outcomes.tracker import OutcomeTracker
from pipeline.services import klines_ingest
from pipeline.market_data import Kline, Trade
from signals.models import SignalOutcome
from signals.services import signal_create, signal_event_create

D = Decimal
SYMBOL = "BTCUSDT"
LADDER = [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.3"}, {"price": "130", "portion": "0.2"}]


def make_signal(**kw):
    fields = dict(symbol=SYMBOL, direction="long", entry_price="100", stop_loss="90", take_profit="120",
                  confidence=70)
    fields.update(kw)
    return signal_create(**fields).signal


def trades(*tape, symbol=SYMBOL):
    return [Trade(symbol=symbol, trade_id=i, price=D(p), qty=D("1"), ts_ms=ts) for i, (ts, p) in enumerate(tape)]


def live_tracker(*symbols, **kw) -> OutcomeTracker:
    """A tracker past its start-up catch-up (as after the feed's first backfill)."""
    tracker = OutcomeTracker(**kw)
    tracker.step([("filled", s, 0) for s in symbols or (SYMBOL,)])
    return tracker


def outcome(signal) -> SignalOutcome:
    return SignalOutcome.objects.get(signal_id=signal.id)


def minute_kline(open_ms, o, h, lo, c, symbol=SYMBOL):
    return Kline(symbol=symbol, timeframe="1m", open_ms=open_ms, open=D(o), high=D(h), low=D(lo), close=D(c),
                 volume=D("1"), trades=1, closed=True)


def test_it_closes_at_the_exact_trade_and_writes_only_on_change(instruments):
    signal = make_signal()
    tracker = live_tracker()
    c = ms_of(signal.created_at)
    tracker.step([("trades", trades((c - 5, "125"), (c, "125"), (c + 1, "105"), (c + 2, "111")))])
    assert tracker.counters["persisted"] == 0          # nothing reached: no write
    tracker.step([("trades", trades((c + 3, "119.5"), (c + 4, "120.25"), (c + 5, "80")))])
    row = outcome(signal)
    assert (row.status, row.exit_price, row.closed_at) == ("tp_hit", D("120.25"), at_of(c + 4))
    assert row.r_multiple == D("2.0250")
    assert row.legs[0]["status"] == "tp_hit" and row.legs[0]["exit_price"] == "120.25"
    assert tracker.counters["persisted"] == 1
    assert signal.id not in tracker.book.tracked


def test_it_persists_ladder_legs_and_rule_moves_as_they_happen(instruments):
    signal = make_signal(take_profit="130", targets=LADDER, stop_rule={"type": "trail_targets"})
    tracker = live_tracker()
    c = ms_of(signal.created_at)
    tracker.step([("trades", trades((c + 1, "110.5")))])
    row = outcome(signal)
    assert row.status == "open" and [leg["status"] for leg in row.legs] == ["tp_hit", "open", "open"]
    assert row.stop_price == D("100")                  # in force from the next trade
    tracker.step([("trades", trades((c + 2, "121"), (c + 3, "115"), (c + 4, "109.9")))])
    row = outcome(signal)
    assert row.status == "sl_hit" and row.exit_price == D("109.9")
    assert [leg["exit_price"] for leg in row.legs] == ["110.5", "121", "109.9"]
    # 0.5 x 1.05 + 0.3 x 2.1 + 0.2 x 0.99
    assert row.r_multiple == D("1.3530")


def test_it_replays_trades_applied_before_it_saw_a_new_signal(instruments):
    tracker = live_tracker()
    tracker.step()
    now = ms_of(timezone.now())
    # Trades stamped later than the signal's creation reach the tracker before its
    # poll sees the signal (as when the signal commits while a batch is in flight).
    tracker.step([("trades", trades((now - 50, "130"), (now + 5_000, "89")))])
    signal = make_signal()
    tracker.step()
    row = outcome(signal)
    assert (row.status, row.exit_price, row.closed_at) == ("sl_hit", D("89"), at_of(now + 5_000))


def test_it_applies_an_amendment_to_trades_after_its_time(instruments, staff_user):
    signal = make_signal(created_by=staff_user)
    tracker = live_tracker()
    c = ms_of(signal.created_at)
    tracker.step([("trades", trades((c + 1, "112")))])
    time.sleep(0.01)
    event = signal_event_create(signal_id=signal.id, event_type="move_stop", price="101", created_by=staff_user)
    e = ms_of(event.created_at)
    tracker.step([("trades", trades((e + 1, "101.5")))])
    assert outcome(signal).status == "open" and outcome(signal).stop_price == D("101")
    tracker.step([("trades", trades((e + 2, "101")))])
    row = outcome(signal)
    assert (row.status, row.exit_price) == ("sl_hit", D("101"))

    other = make_signal(created_by=staff_user)
    o = ms_of(other.created_at)
    tracker.step([("trades", trades((o + 1, "105")))])
    close = signal_event_create(signal_id=other.id, event_type="close", reason="done", created_by=staff_user)
    tracker.step([("trades", trades((ms_of(close.created_at) + 1, "106.5")))])
    row = outcome(other)
    assert (row.status, row.exit_price, row.legs[0]["status"]) == ("closed", D("106.5"), "closed")
    assert row.r_multiple == D("0.6500")


def test_it_decides_unstreamed_minutes_by_candles_before_the_held_trades(instruments):
    minute = 60_000
    start = ms_of(timezone.now()) // minute * minute - 10 * minute
    signal = make_signal(created_at=at_of(start + 30_000))
    tracker = OutcomeTracker()
    tracker.step([("trades", trades((start + 9 * minute + 5, "125")))])   # held: start-up
    assert outcome(signal).status == "open"
    klines_ingest(klines=[
        minute_kline(start, "100", "130", "80", "100"),                    # began before creation
        minute_kline(start + minute, "100", "105", "95", "101"),
        minute_kline(start + 2 * minute, "101", "125", "85", "110"),       # both levels: the stop
    ])
    tracker.step([("filled", SYMBOL, start + 9 * minute)])
    row = outcome(signal)
    assert (row.status, row.exit_price, row.closed_at) == ("sl_hit", D("90"), at_of(start + 2 * minute))
    assert tracker.counters["catchups"] == 1


def test_it_expires_by_the_clock_at_the_last_known_price(instruments):
    minute = 60_000
    now = ms_of(timezone.now())
    klines_ingest(klines=[minute_kline(now // minute * minute - 2 * minute, "100", "101", "99", "97.5")])
    signal = make_signal(expires_at=timezone.now() + dt.timedelta(seconds=1))
    tracker = live_tracker(clock=lambda: time.time() + 3600)
    tracker.step()
    row = outcome(signal)
    assert (row.status, row.exit_price, row.closed_at) == ("expired", D("97.5"), signal.expires_at)
    assert row.r_multiple == D("-0.2500")


def test_it_ends_after_a_restart_exactly_where_an_uninterrupted_run_ends(instruments):
    rule = {"type": "trailing", "distance_pct": "5"}
    signal = make_signal(take_profit="130", targets=LADDER, stop_rule=rule)
    c = ms_of(signal.created_at)
    first = [(c + 1, "104"), (c + 2, "111")]                      # target 1: a change, persisted
    second = [(c + 3, "115"), (c + 4, "121"), (c + 5, "118"), (c + 6, "114.9")]
    tracker = live_tracker()
    tracker.step([("trades", trades(*first))])
    tracker.stop()
    assert outcome(signal).status == "open"

    restarted = OutcomeTracker()
    restarted.step([("trades", trades(*second))])                 # held until the backfill
    restarted.step([("filled", SYMBOL, c + 3)])
    row = outcome(signal)

    levels = levels_build(direction="long", entry="100", stop="90", targets=LADDER, stop_rule=rule,
                          created_at=signal.created_at)
    state = state_new(levels)
    for ts, price in first + second:
        apply_trade(levels, state, price=D(price), at=at_of(ts))
    expected = outcome_record(levels, state)
    assert row.status == expected["status"] == "sl_hit"
    assert (row.exit_price, row.closed_at, row.r_multiple) == (
        expected["exit_price"], expected["closed_at"], expected["r_multiple"])
    assert [(leg["status"], leg["exit_price"], leg["r"]) for leg in row.legs] == [
        (leg["status"], leg["exit_price"], leg["r"]) for leg in expected["legs"]]
    assert (row.mfe_r, row.mae_r) == (expected["mfe_r"], expected["mae_r"])


@pytest.mark.parametrize("event_type", ["cancel"])
def test_it_stops_tracking_a_signal_closed_by_an_amendment(instruments, staff_user, event_type):
    signal = make_signal(created_by=staff_user)
    tracker = live_tracker()
    signal_event_create(signal_id=signal.id, event_type=event_type, reason="changed my mind", created_by=staff_user)
    tracker.step()
    c = ms_of(timezone.now())
    tracker.step([("trades", trades((c + 1, "130")))])
    row = outcome(signal)
    assert row.status == "cancelled" and row.exit_price is None
    assert signal.id not in tracker.book.tracked


def test_it_applies_an_amendment_made_during_a_gap_between_the_candles_around_it(instruments, staff_user):
    minute = 60_000
    now_minute = ms_of(timezone.now()) // minute * minute
    signal = make_signal(created_by=staff_user, take_profit="130",
                         created_at=at_of(now_minute - 3 * minute))
    tracker = OutcomeTracker()
    tracker.step([("trades", trades((now_minute + 3 * minute, "100")))])   # held: start-up
    event = signal_event_create(signal_id=signal.id, event_type="move_stop", price="99", created_by=staff_user)
    tracker.step()
    klines_ingest(klines=[
        minute_kline(now_minute - 2 * minute, "100", "101", "95", "100"),   # before the move: 95 is fine
        minute_kline(now_minute + minute, "100", "101", "98.5", "99.5"),    # after it: the moved stop
    ])
    tracker.step([("filled", SYMBOL, now_minute + 3 * minute)])
    row = outcome(signal)
    assert event.created_at < at_of(now_minute + minute)
    assert (row.status, row.exit_price, row.closed_at) == ("sl_hit", D("99"), at_of(now_minute + minute))
    assert row.state["last_event_id"] == event.id


def test_it_applies_trades_in_exchange_order_and_drops_duplicates_and_late_ones(instruments):
    signal = make_signal()
    tracker = live_tracker()
    c = ms_of(signal.created_at)
    t = [Trade(symbol=SYMBOL, trade_id=i, price=D(p), qty=D("1"), ts_ms=c + ts)
         for i, (ts, p) in enumerate([(1, "105"), (2, "89"), (3, "121"), (4, "100")], start=1)]
    tracker.step([("trades", [t[0], t[0]])])                       # a duplicate in the batch
    tracker.step([("trades", [t[2], t[1]])])                       # out of order within a batch
    tracker.step([("trades", [t[0], t[3]])])                       # a late resend, then news
    row = outcome(signal)
    assert (row.status, row.exit_price, row.closed_at) == ("sl_hit", D("89"), at_of(c + 2))
    assert tracker.counters["stale_trades"] == 2
