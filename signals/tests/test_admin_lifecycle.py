"""Admin for the lifecycle: normalized prices, refusals explained on the page and
logged as one line, the amendment history and the amendments themselves (change
page form and list actions), ladders and stop rules on the add form, receipts."""
from __future__ import annotations

import logging

import pytest

from signals.models import Signal, SignalEvent, SignalOutcome
from signals.services import receipt_ack, signal_event_create, signal_outcome_close

pytestmark = pytest.mark.django_db
ADD_URL = "/admin/signals/signal/add/"
LIST_URL = "/admin/signals/signal/"


def _form(instrument, **overrides):
    data = {"instrument": instrument.pk, "direction": "long", "entry_price": "100", "stop_loss": "90",
            "take_profit": "", "targets": "110:0.5, 120:0.5", "stop_rule": "breakeven", "stop_after_target": "1",
            "confidence": "70", "timeframe": "1h", "source": "manual", "note": "", "expires_at_0": "",
            "expires_at_1": ""}
    data.update(overrides)
    return data


def test_it_shows_prices_normalized(admin_client, signal_factory):
    signal = signal_factory(entry_price="70400", stop_loss="70000.5", take_profit="71000")
    html = admin_client.get(LIST_URL).content.decode() + admin_client.get(f"{LIST_URL}{signal.pk}/change/").content.decode()
    assert "70400" in html and "70000.5" in html
    assert "70400.0000000000" not in html and "70000.5000000000" not in html


@pytest.mark.parametrize("method, suffix, words", [
    ("get", "delete/", "can never be deleted"),
    ("post", "delete/", "can never be deleted"),
    ("post", "change/", "can never be edited"),
])
def test_it_explains_a_refused_delete_or_edit_on_the_page_and_logs_one_line(admin_client, signal_factory, caplog,
                                                                            method, suffix, words):
    signal = signal_factory(note="keep")
    with caplog.at_level(logging.INFO):
        response = getattr(admin_client, method)(f"{LIST_URL}{signal.pk}/{suffix}", {"note": "x", "post": "yes"})
    assert response.status_code == 403
    assert words in response.content.decode()
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and not records[0].exc_info, [r.getMessage() for r in records]
    assert words in records[0].getMessage() and "admin" in records[0].getMessage()
    assert Signal.objects.get(pk=signal.pk).note == "keep"


def test_it_publishes_a_ladder_with_a_stop_rule_from_the_add_form(admin_client, instruments):
    response = admin_client.post(ADD_URL, _form(instruments["BTCUSDT"]))
    assert response.status_code == 302, response.content.decode()[-3000:]
    signal = Signal.objects.get()
    assert signal.targets == [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.5"}]
    assert signal.take_profit == 120 and signal.stop_rule == {"type": "breakeven", "after_target": 1}
    assert response["Location"] == f"{LIST_URL}{signal.pk}/change/"


@pytest.mark.parametrize("overrides, field, words", [
    ({"targets": "110:0.5, 105:0.5"}, "targets", "target 2 must be above target 1"),
    ({"targets": "110"}, "targets", "price:portion"),
    ({"stop_after_target": "2"}, "stop_rule", "between 1 and 1"),
    ({"take_profit": "125"}, "take_profit", "last target"),
])
def test_it_explains_a_bad_ladder_on_the_add_form(admin_client, instruments, overrides, field, words):
    response = admin_client.post(ADD_URL, _form(instruments["BTCUSDT"], **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field]), errors
    assert Signal.objects.count() == 0


def test_it_names_type_and_domain_errors_in_one_round(admin_client, instruments):
    response = admin_client.post(ADD_URL, _form(instruments["BTCUSDT"], confidence="x", stop_loss="110",
                                                 targets="90:1", stop_rule="fixed"))
    errors = response.context["adminform"].form.errors
    assert {"confidence", "stop_loss", "targets"} <= set(errors), errors
    assert "must be below the entry price" in errors["stop_loss"][0]


def test_it_shows_the_amendment_history_and_the_stop_in_force(admin_client, admin_user, signal_factory):
    signal = signal_factory()
    signal_event_create(signal_id=signal.pk, event_type="move_stop", price="95", reason="tighten",
                        created_by=admin_user)
    html = admin_client.get(f"{LIST_URL}{signal.pk}/change/").content.decode()
    assert "Amendments (permanent)" in html and "tighten" in html and "move_stop" in html
    assert f"{LIST_URL}{signal.pk}/amend/" in html


def test_it_records_an_amendment_from_the_amend_page(admin_client, signal_factory):
    signal = signal_factory()
    page = admin_client.get(f"{LIST_URL}{signal.pk}/amend/")
    assert page.status_code == 200 and "Stop in force now: <strong>90</strong>" in page.content.decode()
    response = admin_client.post(f"{LIST_URL}{signal.pk}/amend/", {"type": "move_stop", "price": "97",
                                                                    "reason": "news"})
    assert response.status_code == 302
    event = SignalEvent.objects.get()
    assert (event.type, event.price, event.reason) == ("move_stop", 97, "news")


def test_it_explains_a_refused_or_bad_amendment_on_the_amend_page(admin_client, signal_factory):
    signal = signal_factory()
    bad = admin_client.post(f"{LIST_URL}{signal.pk}/amend/", {"type": "move_stop", "price": "80"})
    assert bad.status_code == 400 and "must be above the stop in force" in bad.content.decode()
    signal_outcome_close(signal_id=signal.pk, status="tp_hit", exit_price="120")
    refused = admin_client.post(f"{LIST_URL}{signal.pk}/amend/", {"type": "cancel"})
    assert refused.status_code == 409 and "already closed (tp_hit)" in refused.content.decode()
    assert not SignalEvent.objects.exists()


def test_it_closes_and_cancels_from_list_actions_and_reports_refusals(admin_client, signal_factory):
    first, second, done = signal_factory(), signal_factory(), signal_factory()
    signal_outcome_close(signal_id=done.pk, status="sl_hit", exit_price="90")
    response = admin_client.post(LIST_URL, {"action": "cancel_signals",
                                            "_selected_action": [first.pk, done.pk]}, follow=True)
    html = response.content.decode()
    assert "Cancel recorded for 1 signal(s)." in html and f"#{done.pk}: Signal #{done.pk} is already closed" in html
    assert SignalOutcome.objects.get(pk=first.pk).status == "cancelled"
    admin_client.post(LIST_URL, {"action": "close_signals", "_selected_action": [second.pk]})
    assert SignalEvent.objects.filter(signal=second, type="close").count() == 1


def test_it_shows_each_users_last_delivery(admin_client, signal_factory, reader_user):
    newest = signal_factory().pk
    receipt_ack(user=reader_user, signal_id=newest)
    html = admin_client.get("/admin/signals/userreceipt/").content.decode()
    assert "reader" in html and f">{newest}<" in html
    assert admin_client.get("/admin/signals/userreceipt/add/").status_code == 403
