"""signal_create with a take-profit ladder, a stop rule, a trigger and an external id:
the domain rules, the stored form, and repeats that return the first signal."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from signals.models import Signal
from signals.selectors import signal_payload
from signals.services import SignalValidationError, signal_create, signal_validate

pytestmark = pytest.mark.django_db


def _long(**overrides):
    fields = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90", confidence=70)
    fields.update(overrides)
    return fields


LADDER = [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.3"}, {"price": "130", "portion": "0.2"}]


def _errors(**fields):
    before = Signal.objects.count()
    with pytest.raises(SignalValidationError) as caught:
        signal_create(**fields)
    assert Signal.objects.count() == before
    return caught.value.errors


def test_it_stores_a_ladder_and_derives_take_profit_from_the_last_target(instruments):
    signal = signal_create(**_long(targets=LADDER)).signal
    assert signal.take_profit == 130
    assert Signal.objects.get(pk=signal.pk).targets == LADDER
    assert signal_payload(Signal.objects.get(pk=signal.pk))["targets"] == LADDER


def test_it_accepts_a_ladder_whose_last_target_equals_take_profit(instruments):
    signal = signal_create(**_long(targets=LADDER, take_profit="130.000")).signal
    assert signal.take_profit == 130


def test_it_makes_one_target_of_take_profit_when_no_ladder_is_given(instruments):
    signal = signal_create(**_long(take_profit="120")).signal
    assert signal.targets == [{"price": "120", "portion": "1"}]
    assert signal.stop_rule == {"type": "fixed"}


def test_it_refuses_a_take_profit_that_disagrees_with_the_last_target(instruments):
    errors = _errors(**_long(targets=LADDER, take_profit="125"))
    assert errors == {"take_profit": ["Must equal the last target's price (130), or be left out."]}


def test_it_requires_take_profit_or_targets(instruments):
    assert "take_profit" in _errors(**_long())


@pytest.mark.parametrize("targets, words", [
    ([{"price": "120", "portion": "0.5"}, {"price": "110", "portion": "0.5"}], "target 2 must be above target 1"),
    ([{"price": "95", "portion": "1"}], "target 1 must be above the entry price"),
    ([{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.4"}], "add up to 1 (they add up to 0.9)"),
    ([{"price": "110", "portion": "0"}, {"price": "120", "portion": "1"}], "greater than 0"),
    ([{"price": "abc", "portion": "1"}], "Target 1 price: A valid number is required."),
    ([{"price": "110"}], "Target 1 portion: This field is required."),
    ([{"price": "110", "portion": "1", "size": 3}], "must be an object with 'price' and 'portion'"),
    ([], "non-empty list"),
    ("110", "non-empty list"),
    ([{"price": str(110 + i), "portion": "0.0625"} for i in range(16)], "At most 10 targets"),
])
def test_it_explains_a_bad_ladder(instruments, targets, words):
    errors = _errors(**_long(targets=targets))
    assert any(words in message for message in errors["targets"]), errors


def test_it_orders_a_short_ladder_downwards(instruments):
    short = dict(symbol="BTCUSDT", direction="short", entry_price="100", stop_loss="110", confidence=50)
    assert signal_create(**short, targets=[{"price": "90", "portion": "0.5"},
                                           {"price": "80", "portion": "0.5"}]).signal.take_profit == 80
    errors = _errors(**short, targets=[{"price": "80", "portion": "0.5"}, {"price": "90", "portion": "0.5"}])
    assert "target 2 must be below target 1" in errors["targets"][0]


@pytest.mark.parametrize("rule, stored", [
    ({"type": "fixed"}, {"type": "fixed"}),
    ({"type": "breakeven", "after_target": 2}, {"type": "breakeven", "after_target": 2}),
    ({"type": "trail_targets"}, {"type": "trail_targets"}),
    ({"type": "trailing", "distance_pct": 1.50}, {"type": "trailing", "distance_pct": "1.5"}),
    ({"type": "trailing", "distance_pct": "50"}, {"type": "trailing", "distance_pct": "50"}),
])
def test_it_stores_each_stop_rule(instruments, rule, stored):
    assert signal_create(**_long(targets=LADDER, stop_rule=rule)).signal.stop_rule == stored


@pytest.mark.parametrize("rule, words", [
    ({"type": "moon"}, "'type' must be one of"),
    ({"type": "breakeven", "after_target": 3}, "between 1 and 2"),
    ({"type": "breakeven", "after_target": 0}, "between 1 and 2"),
    ({"type": "breakeven", "after_target": "1"}, "whole number"),
    ({"type": "trailing", "distance_pct": 0}, "greater than 0 and at most 50"),
    ({"type": "trailing", "distance_pct": 51}, "greater than 0 and at most 50"),
    ({"type": "trailing"}, "'distance_pct': This field is required."),
    ({"type": "fixed", "after_target": 1}, "Unknown keys for 'fixed': after_target"),
    ("fixed", "Must be an object"),
])
def test_it_explains_a_bad_stop_rule(instruments, rule, words):
    errors = _errors(**_long(targets=LADDER, stop_rule=rule))
    assert any(words in message for message in errors["stop_rule"]), errors


def test_it_needs_two_targets_for_rules_that_move_after_a_target(instruments):
    for rule in ({"type": "breakeven", "after_target": 1}, {"type": "trail_targets"}):
        assert "stop_rule" in _errors(**_long(take_profit="120", stop_rule=rule))


def test_it_names_every_bad_field_at_once_including_an_unknown_symbol(instruments):
    errors = _errors(symbol="NOSUCHCOIN", direction="up", entry_price="x", stop_loss="90", take_profit="120",
                     confidence=101, timeframe="7m", targets=[{"price": "1", "portion": "2"}],
                     stop_rule={"type": "moon"})
    assert set(errors) == {"symbol", "direction", "entry_price", "confidence", "timeframe", "targets", "stop_rule"}


def test_it_skips_rules_for_fields_a_door_could_not_parse():
    # A door passes only what it parsed; absent required fields are the door's to report.
    assert signal_validate(direction="long", entry_price="100", stop_loss="110") == {
        "stop_loss": ["For a long signal the stop-loss must be below the entry price."]}


def _trigger(config_id=7, minute=0):
    opened = dt.datetime(2026, 1, 5, 12, minute, tzinfo=dt.timezone.utc)
    return {"config_id": config_id, "timeframe": "15m", "candle_open_time": opened}


def test_it_returns_the_first_signal_for_a_repeated_trigger(instruments):
    first = signal_create(**_long(take_profit="120", source="ema_cross", trigger=_trigger()))
    again = signal_create(**_long(take_profit="121", source="ema_cross", trigger=_trigger()))
    other = signal_create(**_long(take_profit="120", source="ema_cross", trigger=_trigger(minute=15)))
    assert first.created and not again.created and other.created
    assert again.signal.pk == first.signal.pk
    assert Signal.objects.count() == 2
    assert signal_payload(Signal.objects.get(pk=first.signal.pk))["trigger"] == {
        "config_id": 7, "timeframe": "15m", "candle_open_time": "2026-01-05T12:00:00Z"}


def test_it_returns_the_first_signal_for_a_repeated_external_id(instruments):
    first = signal_create(**_long(take_profit="120", external_id="tv-42"))
    again = signal_create(**_long(take_profit="120", external_id="tv-42"))
    assert (first.created, again.created, again.signal.pk) == (True, False, first.signal.pk)
    assert Signal.objects.filter(external_id="tv-42").count() == 1


@pytest.mark.parametrize("trigger", [
    {"config_id": 1, "timeframe": "15m"},
    {"config_id": 0, "timeframe": "15m", "candle_open_time": timezone.now()},
    {"config_id": 1, "timeframe": "7m", "candle_open_time": timezone.now()},
    {"config_id": 1, "timeframe": "15m", "candle_open_time": dt.datetime(2026, 1, 1)},
])
def test_it_explains_a_bad_trigger(instruments, trigger):
    assert "trigger" in _errors(**_long(take_profit="120", trigger=trigger))


def test_it_keeps_an_imported_creation_time_and_judges_expiry_against_it(instruments):
    created = timezone.now() - dt.timedelta(days=30)
    signal = signal_create(**_long(take_profit="120", created_at=created,
                                   expires_at=created + dt.timedelta(days=1))).signal
    assert Signal.objects.get(pk=signal.pk).created_at == created
    errors = _errors(**_long(take_profit="120", created_at=created, expires_at=created - dt.timedelta(hours=1)))
    assert errors == {"expires_at": ["Must be after created_at."]}
    assert "created_at" in _errors(**_long(take_profit="120", created_at=timezone.now() + dt.timedelta(days=1)))


def test_it_enforces_the_trigger_pair_in_the_database(instruments):
    signal = signal_create(**_long(take_profit="120", trigger=_trigger())).signal
    constraint = "signal_trigger_unique"
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conname = %s", [constraint])
        assert cursor.fetchone() == (constraint,)
    assert signal.trigger_config_id == 7
