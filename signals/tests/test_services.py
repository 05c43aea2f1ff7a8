"""signal_create / signal_validate / signal_outcome_close: every creation rule and the
outcome's forward-only move, exercised through the one write path on PostgreSQL."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from signals.models import Instrument, Signal, SignalOutcome
from signals.selectors import signal_payload
from signals.services import (
    SignalValidationError,
    demo_instruments_seed,
    signal_create,
    signal_outcome_close,
    signal_validate,
)

pytestmark = pytest.mark.django_db


def _long(**overrides):
    fields = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                  take_profit="120", confidence=70)
    fields.update(overrides)
    return fields


def _short(**overrides):
    return _long(direction="short", stop_loss="110", take_profit="80", **overrides)


def _errors(**fields) -> dict[str, list[str]]:
    """Field errors signal_create raises, after checking nothing was written."""
    before = Signal.objects.count()
    with pytest.raises(SignalValidationError) as caught:
        signal_create(**fields)
    assert Signal.objects.count() == before
    # signal_validate (the admin form's dry run) must agree with the real thing.
    dry_run = {k: v for k, v in fields.items() if k != "idempotency_key"}
    assert not dry_run.keys() ^ fields.keys() or "idempotency_key" in caught.value.errors
    assert signal_validate(**dry_run) == {k: v for k, v in caught.value.errors.items() if k != "idempotency_key"}
    return caught.value.errors


# --- valid signals --------------------------------------------------------------------

def test_it_creates_a_long_signal_with_an_open_outcome(instruments):
    result = signal_create(**_long(note="breakout"))
    assert result.created is True
    signal = Signal.objects.select_related("outcome").get(pk=result.signal.pk)
    assert (signal.symbol, signal.market, signal.direction) == ("BTCUSDT", "crypto", "long")
    assert (signal.entry_price, signal.stop_loss, signal.take_profit) == (100, 90, 120)
    assert signal.instrument == instruments["BTCUSDT"]
    assert signal.outcome.status == "open"
    assert signal.outcome.closed_at is signal.outcome.exit_price is signal.outcome.r_multiple is None
    assert signal.note == "breakout" and signal.source == "manual" and signal.timeframe == "1h"


def test_it_creates_a_short_signal(instruments):
    signal = signal_create(**_short()).signal
    assert signal.direction == "short"
    assert signal_validate(**_short()) == {}


def test_it_copies_symbol_and_market_from_the_instrument(instruments):
    signal = signal_create(**_long(symbol=" usdcop ", entry_price="4000", stop_loss="3900",
                                   take_profit="4100")).signal
    assert (signal.symbol, signal.market) == ("USDCOP", "forex")


def test_it_accepts_confidence_at_both_bounds(instruments):
    assert signal_create(**_long(confidence=0)).signal.confidence == 0
    assert signal_create(**_long(confidence="100")).signal.confidence == 100


def test_it_gives_ids_in_creation_order(instruments):
    ids = [signal_create(**_long()).signal.id for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_it_returns_the_same_values_it_stored(instruments):
    """The payload broadcast at creation must equal what a later read returns."""
    expires = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=5))) + dt.timedelta(hours=2)
    signal = signal_create(**_long(entry_price="65000.5", stop_loss="64000.25",
                                   take_profit="67000.0000000001", expires_at=expires)).signal
    fresh = Signal.objects.select_related("outcome").get(pk=signal.pk)
    assert signal_payload(signal) == signal_payload(fresh)
    assert signal_payload(fresh)["expires_at"].endswith("Z")


# --- price levels by direction -------------------------------------------------------

@pytest.mark.parametrize("stop, take, bad_fields", [
    ("100", "120", {"stop_loss"}),            # stop equal to entry
    ("110", "120", {"stop_loss"}),            # stop above entry
    ("90", "100", {"take_profit"}),           # take equal to entry
    ("90", "95", {"take_profit"}),            # take below entry
    ("110", "95", {"stop_loss", "take_profit"}),  # levels of a short
])
def test_it_refuses_long_levels_on_the_wrong_side(instruments, stop, take, bad_fields):
    errors = _errors(**_long(stop_loss=stop, take_profit=take))
    assert set(errors) == bad_fields
    assert all("long" in message for field in bad_fields for message in errors[field])


@pytest.mark.parametrize("stop, take, bad_fields", [
    ("100", "80", {"stop_loss"}),
    ("90", "80", {"stop_loss"}),
    ("110", "100", {"take_profit"}),
    ("110", "120", {"take_profit"}),
    ("90", "120", {"stop_loss", "take_profit"}),
])
def test_it_refuses_short_levels_on_the_wrong_side(instruments, stop, take, bad_fields):
    errors = _errors(**_long(direction="short", stop_loss=stop, take_profit=take))
    assert set(errors) == bad_fields
    assert "above" in " ".join(errors.get("stop_loss", ["above"]))
    assert "below" in " ".join(errors.get("take_profit", ["below"]))


# --- prices ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, word", [
    ("0", "positive"), ("-5", "positive"), (-5, "positive"),
    ("abc", "valid number"), ("", "required"), (None, "required"),
    ("NaN", "finite"), ("-Infinity", "finite"), ("Infinity", "finite"), (float("inf"), "finite"),
    ("1e14", "too large"), ("99999999999999999999", "too large"),
    ("1_000", "valid number"), ("١٠٠", "valid number"), ([100], "valid number"), (True, "valid number"),
    ("0.00000000001", "decimal places"), ("100.12345678901", "decimal places"),
    ("1e-99999999999999999999", "valid number"), pytest.param(10 ** 5000, "too large", id="5000-digit-int"), ({"v": 1}, "valid number"),
])
def test_it_refuses_bad_entry_prices_with_a_field_error(instruments, value, word):
    errors = _errors(**_long(entry_price=value))
    assert "entry_price" in errors
    assert word in " ".join(errors["entry_price"]).lower()


@pytest.mark.parametrize("field", ["stop_loss", "take_profit"])
def test_it_refuses_non_positive_stop_and_take(instruments, field):
    errors = _errors(**_long(**{field: "0"}))
    assert list(errors) == [field]


def test_it_accepts_prices_with_ten_decimal_places(instruments):
    signal = signal_create(**_long(entry_price="0.0000000002", stop_loss="0.0000000001",
                                   take_profit="0.0000000003")).signal
    assert Signal.objects.get(pk=signal.pk).entry_price == Decimal("0.0000000002")


def test_it_accepts_numbers_and_decimals_as_prices(instruments):
    signal = signal_create(**_long(entry_price=100, stop_loss=Decimal("90.5"), take_profit=120.25)).signal
    assert Signal.objects.get(pk=signal.pk).take_profit == Decimal("120.25")


# --- symbol ---------------------------------------------------------------------------

def test_it_refuses_an_unknown_symbol(instruments):
    errors = _errors(**_long(symbol="DOGEUSDT"))
    assert list(errors) == ["symbol"] and "Unknown symbol" in errors["symbol"][0]


def test_it_refuses_an_inactive_symbol(instruments):
    Instrument.objects.filter(symbol="ETHUSDT").update(active=False)
    errors = _errors(**_long(symbol="ETHUSDT"))
    assert list(errors) == ["symbol"] and "not active" in errors["symbol"][0]


@pytest.mark.parametrize("value", ["", None, 42, ["BTCUSDT"], "BTC\x00USDT"])
def test_it_refuses_a_missing_or_malformed_symbol(instruments, value):
    assert "symbol" in _errors(**_long(symbol=value))


# --- other fields -----------------------------------------------------------------------

@pytest.mark.parametrize("value", [-1, 101, "101", "abc", None, True, 70.5, "7e1"])
def test_it_refuses_confidence_outside_0_to_100(instruments, value):
    assert list(_errors(**_long(confidence=value))) == ["confidence"]


@pytest.mark.parametrize("value", ["up", "", None, "LONG", ["long"]])
def test_it_refuses_an_unknown_direction(instruments, value):
    assert "direction" in _errors(**_long(direction=value))


def test_it_refuses_an_unknown_timeframe(instruments):
    assert list(_errors(**_long(timeframe="2h"))) == ["timeframe"]


@pytest.mark.parametrize("value", ["", "   ", "x" * 65, None, "ma\x00nual"])
def test_it_refuses_a_bad_source(instruments, value):
    assert list(_errors(**_long(source=value))) == ["source"]


@pytest.mark.parametrize("value", ["x" * 2001, 12, "a\x00b"])
def test_it_refuses_a_bad_note(instruments, value):
    assert list(_errors(**_long(note=value))) == ["note"]


def test_it_refuses_an_expiry_in_the_past_or_now(instruments):
    errors = _errors(**_long(expires_at=timezone.now() - dt.timedelta(seconds=1)))
    assert errors == {"expires_at": ["Must be in the future."]}


@pytest.mark.parametrize("value", [dt.datetime(2999, 1, 1), "2999-01-01T00:00:00Z", 1])
def test_it_refuses_a_naive_or_non_datetime_expiry(instruments, value):
    assert list(_errors(**_long(expires_at=value))) == ["expires_at"]


def test_it_accepts_an_expiry_in_the_future(instruments):
    expires = timezone.now() + dt.timedelta(minutes=5)
    assert signal_create(**_long(expires_at=expires)).signal.expires_at == expires


def test_it_reports_every_bad_field_at_once(instruments):
    errors = _errors(symbol="NOPE", direction="sideways", entry_price="-1", stop_loss="x",
                     take_profit="", confidence=500, timeframe="7m", source="", note=None)
    assert set(errors) == {"symbol", "direction", "entry_price", "stop_loss", "take_profit",
                           "confidence", "timeframe", "source"}
    assert all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in errors.values())


def test_it_needs_a_user_for_an_idempotency_key(instruments):
    assert list(_errors(**_long(idempotency_key="abc"))) == ["idempotency_key"]


# --- outcome ----------------------------------------------------------------------------

def test_it_closes_an_outcome_once_with_its_r_multiple(instruments):
    signal = signal_create(**_long()).signal
    outcome = signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price=Decimal("120"))
    assert (outcome.status, outcome.exit_price, outcome.r_multiple) == ("tp_hit", 120, Decimal("2"))
    assert outcome.closed_at is not None
    # Safe to run twice: the second close changes nothing and says so.
    assert signal_outcome_close(signal_id=signal.id, status="sl_hit", exit_price=Decimal("90")) is None
    assert SignalOutcome.objects.get(pk=signal.id).status == "tp_hit"


def test_it_computes_a_negative_r_multiple_for_a_short_stop(instruments):
    signal = signal_create(**_short()).signal
    outcome = signal_outcome_close(signal_id=signal.id, status="sl_hit", exit_price=Decimal("110"))
    assert outcome.r_multiple == Decimal("-1")


@pytest.mark.parametrize("exit_price", ["2", "99999999999999"])
def test_it_stores_an_extreme_r_multiple_without_overflowing(instruments, exit_price):
    signal = signal_create(**_long(entry_price="1", stop_loss="0.9999999999", take_profit="2")).signal
    outcome = signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price=exit_price)
    stored = SignalOutcome.objects.get(pk=signal.id)
    assert stored.status == "tp_hit" and stored.r_multiple == outcome.r_multiple > 0


def test_it_accepts_an_exit_price_as_int_float_or_text(instruments):
    ids = [signal_create(**_long()).signal.id for _ in range(3)]
    for signal_id, price in zip(ids, (120, 119.5, "118.25")):
        outcome = signal_outcome_close(signal_id=signal_id, status="tp_hit", exit_price=price)
        assert outcome.exit_price == Decimal(str(price))


@pytest.mark.parametrize("price", [0, -1, "abc", float("nan"), Decimal("Infinity"), None])
def test_it_refuses_a_bad_exit_price_and_leaves_the_outcome_open(instruments, price):
    signal = signal_create(**_long()).signal
    with pytest.raises(ValueError):
        signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price=price)
    assert SignalOutcome.objects.get(pk=signal.id).status == "open"


def test_it_refuses_open_as_a_closing_status(instruments):
    signal = signal_create(**_long()).signal
    with pytest.raises(ValueError):
        signal_outcome_close(signal_id=signal.id, status="open", exit_price=Decimal("100"))


def test_it_seeds_demo_instruments_idempotently(db):
    first = demo_instruments_seed()
    second = demo_instruments_seed()
    assert [i.pk for i in first] == [i.pk for i in second]
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "USDCOP"} <= set(Instrument.objects.values_list("symbol", flat=True))


def test_it_counts_committed_signals_for_the_metrics(instruments, django_capture_on_commit_callbacks):
    from signals.metrics import SIGNALS_CREATED

    before = SIGNALS_CREATED.labels(source="metrics-test")._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        signal_create(**_long(source="metrics-test"))
    assert SIGNALS_CREATED.labels(source="metrics-test")._value.get() == before + 1
