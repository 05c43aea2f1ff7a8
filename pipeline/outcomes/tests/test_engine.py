"""The pure outcome engine on constructed tapes: every rule of the contract's
"outcome rule" and "outcome with a ladder" rows, trade by trade and by candles."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pipeline.outcomes.engine import (
    EngineInputError,
    apply_candle,
    apply_event,
    apply_expiry,
    apply_extremes,
    apply_trade,
    levels_build,
    state_new,
    watch_band,
)
from pipeline.outcomes.records import excursions, outcome_record, r_multiple, state_from_record

T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.timezone.utc)
D = Decimal


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def long_signal(**kw):
    base = dict(direction="long", entry="100", stop="90", take_profit="120", created_at=at(0))
    base.update(kw)
    return levels_build(**base)


def ladder(rule=None, direction="long", **kw):
    if direction == "long":
        targets = [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.3"},
                   {"price": "130", "portion": "0.2"}]
        levels = dict(entry="100", stop="90", take_profit="130")
    else:
        targets = [{"price": "90", "portion": "0.5"}, {"price": "80", "portion": "0.3"},
                   {"price": "70", "portion": "0.2"}]
        levels = dict(entry="100", stop="110", take_profit="70")
    return levels_build(direction=direction, targets=targets, stop_rule=rule, created_at=at(0), **levels, **kw)


def run(levels, tape, state=None):
    """Apply (seconds, price) trades; returns the state."""
    state = state or state_new(levels)
    for seconds, price in tape:
        apply_trade(levels, state, price=D(price), at=at(seconds))
    return state


def leg_view(state):
    return [(leg.status, leg.exit_price, leg.closed_at) for leg in state.legs]


# --- the single-target contract rule ------------------------------------------------------


def test_it_closes_at_the_first_trade_reaching_take_profit_with_its_price_and_time():
    levels = long_signal()
    state = run(levels, [(1, "105"), (2, "119.99"), (3, "120.5"), (4, "80")])
    assert (state.status, state.exit_price, state.closed_at) == ("tp_hit", D("120.5"), at(3))
    assert r_multiple(levels, state) == D("2.0500")


def test_it_stops_a_short_at_the_first_trade_at_or_above_the_stop():
    levels = levels_build(direction="short", entry="100", stop="110", take_profit="80", created_at=at(0))
    state = run(levels, [(1, "105"), (2, "110"), (3, "70")])
    assert (state.status, state.exit_price, state.closed_at) == ("sl_hit", D("110"), at(2))
    assert r_multiple(levels, state) == D("-1.0000")


def test_it_exits_a_gap_past_the_stop_at_the_trade_price_not_the_level():
    levels = long_signal()
    state = run(levels, [(1, "95"), (2, "85")])
    assert (state.status, state.exit_price) == ("sl_hit", D("85"))
    assert r_multiple(levels, state) == D("-1.5000")


def test_it_ignores_trades_at_or_before_created_at_for_a_signal_created_between_two_trades():
    levels = long_signal(created_at=at(10.5))
    state = run(levels, [(9, "125"), (10.5, "125"), (11, "101"), (12, "121")])
    assert (state.status, state.exit_price, state.closed_at) == ("tp_hit", D("121"), at(12))


def test_it_expires_at_the_last_price_before_expiry_when_a_later_trade_arrives():
    levels = long_signal(expires_at=at(60))
    state = run(levels, [(10, "104"), (60, "106"), (61, "130")])
    assert (state.status, state.exit_price, state.closed_at) == ("expired", D("106"), at(60))
    assert r_multiple(levels, state) == D("0.6000")


def test_it_expires_by_the_clock_at_a_given_price_when_no_trade_arrives():
    levels = long_signal(expires_at=at(60))
    state = state_new(levels)
    assert apply_expiry(levels, state, price=D("97")) is True
    assert (state.status, state.exit_price, state.closed_at) == ("expired", D("97"), at(60))
    assert r_multiple(levels, state) == D("-0.3000")
    assert apply_expiry(levels, state, price=D("50")) is False  # forward only


def test_it_never_reopens_or_changes_a_closed_outcome():
    levels = long_signal()
    state = run(levels, [(1, "80"), (2, "130")])
    before = outcome_record(levels, state)
    assert apply_trade(levels, state, price=D("200"), at=at(3)) is False
    assert apply_event(levels, state, kind="move_stop", price=D("95"), at=at(4)) is False
    assert outcome_record(levels, state) == before


# --- ladders and stop rules, trade by trade ------------------------------------------------


def test_it_closes_each_leg_at_the_trade_reaching_it_then_stops_the_rest():
    levels = ladder()
    state = run(levels, [(1, "111"), (2, "105"), (3, "89")])
    assert leg_view(state) == [("tp_hit", D("111"), at(1)), ("sl_hit", D("89"), at(3)),
                               ("sl_hit", D("89"), at(3))]
    assert state.status == "sl_hit"
    # 0.5 x 1.1 + 0.5 x -1.1
    assert r_multiple(levels, state) == D("0.0000")
    record = outcome_record(levels, state)
    assert [leg["r"] for leg in record["legs"]] == ["1.1", "-1.1", "-1.1"]


def test_it_takes_several_targets_in_one_gapping_trade_at_that_trade_price():
    levels = ladder()
    state = run(levels, [(1, "125")])
    assert leg_view(state) == [("tp_hit", D("125"), at(1)), ("tp_hit", D("125"), at(1)), ("open", None, None)]
    state = run(levels, [(2, "131")], state)
    assert state.status == "tp_hit" and state.exit_price == D("131")
    # 0.5 x 2.5 + 0.3 x 2.5 + 0.2 x 3.1
    assert r_multiple(levels, state) == D("2.6200")


def test_it_checks_the_stop_before_targets_within_a_trade():
    # After a rule moved the stop above target 1's price, one trade could be both.
    levels = levels_build(direction="long", entry="100", stop="90", targets=[
        {"price": "110", "portion": "0.5"}, {"price": "112", "portion": "0.5"}],
        stop_rule={"type": "trailing", "distance_pct": "1"}, created_at=at(0))
    state = run(levels, [(1, "111"), (2, "120")])
    assert state.legs[0].status == "tp_hit" and state.legs[1].status == "tp_hit"
    levels = levels_build(direction="long", entry="100", stop="90", targets=[
        {"price": "105", "portion": "0.5"}, {"price": "130", "portion": "0.5"}],
        stop_rule={"type": "trailing", "distance_pct": "1"}, created_at=at(0))
    state = run(levels, [(1, "120")])       # stop now 118.8 from the next trade
    state = run(levels, [(2, "118")], state)
    assert leg_view(state)[1] == ("sl_hit", D("118"), at(2))


def test_it_moves_the_stop_to_entry_after_target_k_from_the_next_trade_breakeven():
    levels = ladder({"type": "breakeven", "after_target": 1})
    state = run(levels, [(1, "110")])
    assert state.stop == D("90") and state.effective_stop == D("100")
    # The very trade that hit target 1 is not checked against the new stop...
    state = run(levels, [(2, "100.5"), (3, "100")], state)
    assert leg_view(state)[1:] == [("sl_hit", D("100"), at(3))] * 2
    assert r_multiple(levels, state) == D("0.5000")


def test_it_waits_for_the_named_target_before_breakeven():
    levels = ladder({"type": "breakeven", "after_target": 2})
    state = run(levels, [(1, "110"), (2, "99")])
    assert state.status == "open" and state.effective_stop == D("90")
    state = run(levels, [(3, "120"), (4, "100")], state)
    assert state.status == "sl_hit" and state.legs[2].exit_price == D("100")


def test_it_trails_the_stop_to_the_previous_target_trail_targets():
    levels = ladder({"type": "trail_targets"})
    state = run(levels, [(1, "110")])
    assert state.effective_stop == D("100")
    state = run(levels, [(2, "121")], state)
    assert state.effective_stop == D("110")
    state = run(levels, [(3, "112"), (4, "110")], state)
    assert leg_view(state) == [("tp_hit", D("110"), at(1)), ("tp_hit", D("121"), at(2)),
                               ("sl_hit", D("110"), at(4))]
    # 0.5 x 1 + 0.3 x 2.1 + 0.2 x 1
    assert r_multiple(levels, state) == D("1.3300")


def test_it_trails_by_percent_from_each_trade_only_tightening():
    levels = ladder({"type": "trailing", "distance_pct": "5"}, direction="short")
    state = run(levels, [(1, "96")])
    assert state.effective_stop == D("100.8")     # 96 + 5 %
    state = run(levels, [(2, "98")], state)       # worse price: the stop never loosens
    assert state.effective_stop == D("100.8")
    state = run(levels, [(3, "89"), (4, "93")], state)
    assert state.legs[0].status == "tp_hit" and state.effective_stop == D("93.45")
    state = run(levels, [(5, "93.45")], state)
    assert state.status == "sl_hit" and state.exit_price == D("93.45")
    # 0.5 x (100-89)/10 + 0.5 x (100-93.45)/10
    assert r_multiple(levels, state) == D("0.8775")


def test_it_marks_the_outcome_tp_hit_only_when_every_leg_hit_a_target():
    levels = ladder(direction="short")
    state = run(levels, [(1, "90"), (2, "80"), (3, "85")])
    assert state.status == "open"
    state = run(levels, [(4, "70")], state)
    assert state.status == "tp_hit" and state.closed_at == at(4) and state.exit_price == D("70")


# --- amendments ------------------------------------------------------------------------------


def test_it_applies_a_move_stop_to_trades_after_its_time_between_two_trades():
    levels = ladder()
    state = run(levels, [(1, "96")])
    assert apply_event(levels, state, kind="move_stop", price=D("97"), at=at(1.5)) is True
    state = run(levels, [(2, "97")], state)
    assert state.status == "sl_hit" and state.closed_at == at(2)


def test_it_closes_the_rest_at_the_next_trade_after_a_close_amendment():
    levels = ladder()
    state = run(levels, [(1, "112")])
    apply_event(levels, state, kind="close", at=at(5))
    state = run(levels, [(5, "80"), (6, "104")], state)   # a trade AT its time does not count
    assert state.legs[0].status == "tp_hit"
    assert state.status == "sl_hit"  # the trade at 5 was still before the close
    levels = ladder()
    state = run(levels, [(1, "112")])
    apply_event(levels, state, kind="close", at=at(5))
    state = run(levels, [(6, "104")], state)
    assert leg_view(state)[1:] == [("closed", D("104"), at(6))] * 2
    assert state.status == "closed"
    assert r_multiple(levels, state) == D("0.8000")


def test_it_cancels_every_leg_before_any_hit_and_refuses_after_one():
    levels = ladder()
    state = run(levels, [(1, "105")])
    assert apply_event(levels, state, kind="cancel", at=at(2)) is True
    assert state.status == "cancelled" and {leg.status for leg in state.legs} == {"cancelled"}
    assert r_multiple(levels, state) is None
    state = run(levels, [(1, "110")])
    assert apply_event(levels, state, kind="cancel", at=at(2)) is False
    assert state.status == "open"


def test_it_lets_the_tape_win_when_a_hit_comes_before_an_amendment():
    levels = long_signal()
    state = run(levels, [(1, "120")])
    assert apply_event(levels, state, kind="close", at=at(1.5)) is False
    assert state.status == "tp_hit"


# --- candles (time not streamed, backtests) ----------------------------------------------------


def candle(levels, state, minute, o, h, l, c):
    start = at(60 * minute)
    return apply_candle(levels, state, open_time=start, open=D(o), high=D(h), low=D(l), close=D(c),
                        end=start + dt.timedelta(minutes=1))


def test_it_counts_a_candle_reaching_both_levels_as_the_stop_exiting_at_the_level():
    levels = long_signal()
    state = state_new(levels)
    assert candle(levels, state, 1, "100", "125", "85", "110") is True
    assert (state.status, state.exit_price, state.closed_at) == ("sl_hit", D("90"), at(60))
    assert r_multiple(levels, state) == D("-1.0000")


def test_it_exits_a_candle_target_at_the_level_and_a_gap_at_the_open():
    levels = long_signal()
    state = state_new(levels)
    candle(levels, state, 1, "100", "121", "95", "118")
    assert (state.status, state.exit_price) == ("tp_hit", D("120"))
    state = state_new(levels)
    candle(levels, state, 1, "100", "101", "95", "100")
    candle(levels, state, 2, "87", "88", "80", "81")      # opened below the stop
    assert (state.status, state.exit_price, state.closed_at) == ("sl_hit", D("87"), at(120))
    state = state_new(levels)
    candle(levels, state, 1, "123", "124", "80", "81")    # opened above the target: known first
    assert (state.status, state.exit_price) == ("tp_hit", D("123"))


def test_it_ignores_candles_opening_before_created_at():
    levels = long_signal(created_at=at(30))
    state = state_new(levels)
    assert candle(levels, state, 0, "100", "130", "100", "101") is False
    candle(levels, state, 1, "101", "119", "91", "118")
    assert state.status == "open" and state.evaluated_until == at(120)


def test_it_moves_a_rule_stop_from_the_next_candle_and_takes_several_targets_in_one():
    levels = ladder({"type": "breakeven", "after_target": 1})
    state = state_new(levels)
    candle(levels, state, 1, "101", "121", "99", "115")   # targets 1 and 2; low 99 not yet the stop
    assert [leg.status for leg in state.legs] == ["tp_hit", "tp_hit", "open"]
    assert [leg.exit_price for leg in state.legs[:2]] == [D("110"), D("120")]
    candle(levels, state, 2, "115", "116", "99", "100")
    assert state.status == "sl_hit" and state.legs[2].exit_price == D("100")


def test_it_expires_by_candles_at_the_close_before_expiry():
    levels = long_signal(expires_at=at(150))
    state = state_new(levels)
    candle(levels, state, 1, "100", "105", "95", "101")
    candle(levels, state, 2, "101", "106", "96", "104")   # straddles the expiry
    assert (state.status, state.exit_price, state.closed_at) == ("expired", D("104"), at(150))


# --- restart, watch band, input ------------------------------------------------------------------


def test_it_rebuilds_the_same_state_from_its_record_mid_tape():
    tape = [(1, "110"), (2, "108"), (3, "121"), (4, "115"), (5, "109"), (6, "135")]
    for rule in ({"type": "trail_targets"}, {"type": "trailing", "distance_pct": "3"},
                 {"type": "breakeven", "after_target": 1}, None):
        levels = ladder(rule)
        straight = run(levels, tape)
        half = run(levels, tape[:3])
        record = outcome_record(levels, half)
        rebuilt = state_from_record(levels, status=record["status"], legs=record["legs"],
                                    state=record["state"], evaluated_until=record["evaluated_until"],
                                    closed_at=record["closed_at"], exit_price=record["exit_price"])
        assert outcome_record(levels, run(levels, tape[3:], rebuilt)) == outcome_record(levels, straight)


def test_it_ends_where_every_trade_ends_when_band_trades_are_skipped_and_folded_in():
    tape = [(1, "104"), (2, "97"), (3, "103"), (4, "108"), (5, "99.5"), (6, "111"), (7, "107"),
            (8, "104"), (9, "121"), (10, "116"), (11, "112")]
    for rule in ({"type": "trailing", "distance_pct": "4"}, {"type": "breakeven", "after_target": 1}, None):
        levels = ladder(rule)
        every = run(levels, tape)
        skipping = state_new(levels)
        seen: list[Decimal] = []        # the skipped trades' prices, folded in before each band check
        for seconds, price in tape:
            if seen:
                apply_extremes(levels, skipping, favourable=max(seen), adverse=min(seen))
            low, high = watch_band(levels, skipping)
            if skipping.status == "open" and low < D(price) < high:
                seen.append(D(price))
                continue
            apply_trade(levels, skipping, price=D(price), at=at(seconds))
        assert leg_view(skipping) == leg_view(every)
        expected, got = outcome_record(levels, every), outcome_record(levels, skipping)
        for record in (expected, got):
            record.pop("evaluated_until")
            record["state"].pop("last_price")
        assert got == expected


def test_it_tracks_mfe_and_mae_in_r():
    levels = long_signal()
    state = run(levels, [(1, "95"), (2, "112"), (3, "92"), (4, "120")])
    assert excursions(levels, state) == (D("2.0000"), D("0.8000"))


@pytest.mark.parametrize("bad", [
    dict(direction="up"),
    dict(stop="101"),
    dict(targets=[{"price": "120", "portion": "0.5"}, {"price": "110", "portion": "0.5"}]),
    dict(stop_rule={"type": "trailing", "distance_pct": "0"}),
    dict(stop_rule={"type": "moon"}),
])
def test_it_refuses_levels_it_cannot_apply(bad):
    with pytest.raises(EngineInputError):
        long_signal(**bad)
