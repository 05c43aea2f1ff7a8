"""signal_event_create and signal_outcome_progress: who may amend, what is refused
and why, the outcome row lock they share, and the on-commit broadcasts."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from signals.dispatch import amendment_published, outcome_decided
from signals.models import SignalEvent, SignalOutcome
from signals.selectors import signal_payload
from signals.services import (
    AmendmentRefused,
    SignalValidationError,
    signal_create,
    signal_event_create,
    signal_outcome_progress,
)

pytestmark = pytest.mark.django_db
LADDER = [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.5"}]


@pytest.fixture
def publisher(django_user_model):
    return django_user_model.objects.create_user("publisher", password="x", is_staff=False)


@pytest.fixture
def ladder_signal(instruments, publisher):
    return signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                         confidence=60, targets=LADDER, created_by=publisher).signal


def _legs(first="open", second="open", exit_price=None):
    def leg(price, status):
        closed = status != "open"
        return {"target": price, "portion": "0.5", "status": status,
                "closed_at": timezone.now() if closed else None, "exit_price": exit_price if closed else None,
                "r": Decimal("1") if closed else None}
    return [leg("110", first), leg("120", second)]


def _progress(signal, **overrides):
    fields = dict(signal_id=signal.pk, legs=_legs(), stop_price="90", evaluated_until=timezone.now(),
                  state={}, mfe_r="0.5", mae_r="-0.2")
    fields.update(overrides)
    return signal_outcome_progress(**fields)


def _payload(signal):
    from signals.models import Signal
    return signal_payload(Signal.objects.get(pk=signal.pk))


# --- who may amend -----------------------------------------------------------------------

def test_it_lets_the_publisher_move_the_stop_and_shows_the_effective_stop(ladder_signal, publisher):
    event = signal_event_create(signal_id=ladder_signal.pk, event_type="move_stop", price="100",
                                reason="to entry", created_by=publisher)
    body = _payload(ladder_signal)
    assert body["effective_stop"] == "100" and body["stop_loss"] == "90"
    assert body["events"] == [{"id": event.id, "type": "move_stop", "price": "100", "reason": "to entry",
                               "created_at": body["events"][0]["created_at"], "created_by": "publisher"}]


def test_it_lets_staff_amend_a_signal_they_did_not_publish(ladder_signal, staff_user):
    assert signal_event_create(signal_id=ladder_signal.pk, event_type="close", created_by=staff_user).type == "close"


def test_it_refuses_anyone_else(ladder_signal, reader_user):
    with pytest.raises(AmendmentRefused, match="publisher or staff") as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="close", created_by=reader_user)
    assert caught.value.code == "not_publisher"
    assert not SignalEvent.objects.exists()


# --- rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("price, words", [
    ("85", "must be above the stop in force (90)"),
    ("90", "must be above the stop in force (90)"),
    ("110", "must stay below the next open target (110)"),
    ("abc", "A valid number is required."),
    (None, "This field is required."),
])
def test_it_explains_a_stop_move_that_is_not_protective(ladder_signal, publisher, price, words):
    with pytest.raises(SignalValidationError) as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="move_stop", price=price, created_by=publisher)
    assert any(words in m for m in caught.value.errors["price"]), caught.value.errors


def test_it_judges_a_stop_move_against_the_next_open_target_after_a_hit(ladder_signal, publisher):
    _progress(ladder_signal, legs=_legs(first="tp_hit", exit_price="110"))
    event = signal_event_create(signal_id=ladder_signal.pk, event_type="move_stop", price="115",
                                created_by=publisher)
    assert event.price == 115


def test_it_refuses_a_price_on_close_and_an_unknown_type(ladder_signal, publisher):
    with pytest.raises(SignalValidationError) as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="close", price="95", created_by=publisher)
    assert "Only move_stop takes a price" in caught.value.errors["price"][0]
    with pytest.raises(SignalValidationError) as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="delete", created_by=publisher)
    assert list(caught.value.errors) == ["type"]


def test_it_answers_an_unknown_signal_with_a_field_error(instruments, publisher):
    with pytest.raises(SignalValidationError) as caught:
        signal_event_create(signal_id=999999, event_type="close", created_by=publisher)
    assert caught.value.errors == {"signal_id": ["No signal #999999."]}


def test_it_cancels_at_once_before_anything_was_reached(ladder_signal, publisher):
    signal_event_create(signal_id=ladder_signal.pk, event_type="cancel", reason="news", created_by=publisher)
    outcome = SignalOutcome.objects.get(pk=ladder_signal.pk)
    assert outcome.status == "cancelled" and outcome.closed_at is not None and outcome.r_multiple is None
    assert [leg["status"] for leg in outcome.legs] == ["cancelled", "cancelled"]


def test_it_refuses_a_cancel_after_a_target_was_hit(ladder_signal, publisher):
    _progress(ladder_signal, legs=_legs(first="tp_hit", exit_price="110"))
    with pytest.raises(AmendmentRefused, match="use close instead") as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="cancel", created_by=publisher)
    assert caught.value.code == "cancel_after_hit"


def test_it_refuses_any_amendment_once_the_outcome_is_closed(ladder_signal, publisher):
    _progress(ladder_signal, legs=_legs("sl_hit", "sl_hit", "90"), status="sl_hit", closed_at=timezone.now(),
              exit_price="90", r_multiple="-1")
    for kind, price in (("move_stop", "95"), ("close", None), ("cancel", None)):
        with pytest.raises(AmendmentRefused, match=r"already closed \(sl_hit\)") as caught:
            signal_event_create(signal_id=ladder_signal.pk, event_type=kind, price=price, created_by=publisher)
        assert caught.value.code == "closed"


def test_it_refuses_amendments_after_a_pending_close(ladder_signal, publisher):
    signal_event_create(signal_id=ladder_signal.pk, event_type="close", created_by=publisher)
    with pytest.raises(AmendmentRefused, match="being closed") as caught:
        signal_event_create(signal_id=ladder_signal.pk, event_type="move_stop", price="95", created_by=publisher)
    assert caught.value.code == "close_pending"


# --- the tracker's writes ----------------------------------------------------------------

def test_it_records_progress_on_an_open_outcome_and_normalizes_legs(ladder_signal):
    outcome = _progress(ladder_signal, legs=_legs(first="tp_hit", exit_price=Decimal("110.00")), stop_price="100")
    stored = SignalOutcome.objects.get(pk=ladder_signal.pk)
    assert stored.status == "open" and stored.stop_price == 100 and outcome.mfe_r == Decimal("0.5")
    assert stored.legs[0]["status"] == "tp_hit" and stored.legs[0]["exit_price"] == "110"
    assert stored.legs[0]["r"] == "1" and stored.legs[0]["closed_at"].endswith("Z")
    assert _payload(ladder_signal)["effective_stop"] == "100"


def test_it_ignores_progress_on_a_closed_outcome_or_older_than_the_last(ladder_signal):
    later = timezone.now()
    assert _progress(ladder_signal, evaluated_until=later) is not None
    assert _progress(ladder_signal, evaluated_until=later - dt.timedelta(seconds=1), stop_price="95") is None
    assert SignalOutcome.objects.get(pk=ladder_signal.pk).stop_price == 90
    _progress(ladder_signal, status="tp_hit", closed_at=later, legs=_legs("tp_hit", "tp_hit", "120"),
              exit_price="120", r_multiple="1.5", evaluated_until=later)
    assert _progress(ladder_signal, evaluated_until=later + dt.timedelta(seconds=5)) is None
    assert SignalOutcome.objects.get(pk=ladder_signal.pk).status == "tp_hit"


def test_it_refuses_a_closing_status_without_a_time(ladder_signal):
    with pytest.raises(ValueError, match="closed_at"):
        _progress(ladder_signal, status="tp_hit")


def test_it_announces_outcomes_only_when_a_status_changes(ladder_signal, django_capture_on_commit_callbacks):
    decided = []

    def receiver(sender, outcome, **kwargs):
        decided.append([leg["status"] for leg in outcome.legs])

    outcome_decided.connect(receiver, weak=False, dispatch_uid="test-progress")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _progress(ladder_signal, mfe_r="0.7")  # only excursions moved
        with django_capture_on_commit_callbacks(execute=True):
            _progress(ladder_signal, legs=_legs(first="tp_hit", exit_price="110"))
    finally:
        outcome_decided.disconnect(dispatch_uid="test-progress")
    assert decided == [["tp_hit", "open"]]


def test_it_pushes_a_moved_stop_to_browsers_without_announcing_it(ladder_signal, django_capture_on_commit_callbacks,
                                                                  monkeypatch):
    from signals import broadcast

    frames, decided = [], []
    monkeypatch.setattr(broadcast, "_publish", lambda message: frames.append(message) or True)
    outcome_decided.connect(lambda sender, outcome, **kw: decided.append(outcome.signal_id), weak=False,
                            dispatch_uid="test-stop-move")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _progress(ladder_signal, stop_price="95")  # a trailing stop moved up, no leg closed
        with django_capture_on_commit_callbacks(execute=True):
            _progress(ladder_signal, stop_price="95", mfe_r="0.9")  # nothing a chart shows moved
    finally:
        outcome_decided.disconnect(dispatch_uid="test-stop-move")
    assert [(m["type"], m["id"]) for m in frames] == [("signal.outcome", ladder_signal.pk)]
    assert '"stop_price":"95"' in frames[0]["frame"]
    assert decided == []


def test_it_announces_each_amendment_after_commit(ladder_signal, publisher, django_capture_on_commit_callbacks):
    seen = []
    amendment_published.connect(lambda sender, event, **kw: seen.append(event.type), weak=False,
                                dispatch_uid="test-amend")
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            signal_event_create(signal_id=ladder_signal.pk, event_type="close", created_by=publisher)
        assert seen == []  # nothing before COMMIT
        for callback in callbacks:
            callback()
    finally:
        amendment_published.disconnect(dispatch_uid="test-amend")
    assert seen == ["close"]


@pytest.mark.django_db(transaction=True)
def test_it_serializes_an_amendment_and_a_tape_hit_on_the_outcome_row(instruments, django_user_model):
    """The tracker holds the outcome row while it closes the signal; a cancel made
    meanwhile waits for it and is then refused with the reason."""
    user = django_user_model.objects.create_user("pub", password="x")
    signal = signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                           confidence=60, targets=LADDER, created_by=user).signal
    from django.db import transaction

    outcome_locked, result = threading.Event(), {}

    def amend():
        outcome_locked.wait(30)
        try:
            signal_event_create(signal_id=signal.pk, event_type="cancel", created_by=user)
        except AmendmentRefused as exc:
            result["refused"] = str(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=amend)
    thread.start()
    with transaction.atomic():
        SignalOutcome.objects.select_for_update().get(pk=signal.pk)
        outcome_locked.set()
        thread.join(1.0)
        assert thread.is_alive()  # blocked behind our row lock
        _progress(signal, status="sl_hit", closed_at=timezone.now(), legs=_legs("sl_hit", "sl_hit", "90"),
                  exit_price="90", r_multiple="-1")
    thread.join(30)
    assert "already closed (sl_hit)" in result["refused"]
    assert not SignalEvent.objects.exists()
