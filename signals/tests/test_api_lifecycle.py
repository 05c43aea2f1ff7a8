"""The lifecycle over the REST API: ladders and stop rules on create, one 400 naming
every bad field, amendments at /api/signals/{id}/events/ (201, 400, 403, 409),
the outcome filter, and the schema documenting all of it."""
from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from signals.models import SignalEvent
from signals.services import signal_outcome_close

pytestmark = pytest.mark.django_db
URL = "/api/signals/"


def _body(**overrides):
    body = {"symbol": "BTCUSDT", "direction": "long", "entry_price": "100", "stop_loss": "90",
            "confidence": 70, "targets": [{"price": "110", "portion": 0.5}, {"price": 120, "portion": "0.5"}],
            "stop_rule": {"type": "breakeven", "after_target": 1}}
    body.update(overrides)
    return body


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_it_creates_a_signal_with_a_ladder_and_a_stop_rule(staff_client, instruments):
    response = staff_client.post(URL, _body(), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["targets"] == [{"price": "110", "portion": "0.5"}, {"price": "120", "portion": "0.5"}]
    assert data["take_profit"] == "120" and data["stop_rule"] == {"type": "breakeven", "after_target": 1}
    assert [leg["target"] for leg in data["outcome"]["legs"]] == ["110", "120"]


def test_it_names_every_bad_field_in_one_answer(staff_client, instruments):
    # The example: the unknown symbol used to come only after the type errors.
    response = staff_client.post(URL, {"symbol": "NOSUCHCOIN", "direction": "up", "entry_price": "100",
                                       "stop_loss": "90", "take_profit": "120", "confidence": "high",
                                       "timeframe": "7m"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"symbol", "direction", "confidence", "timeframe"}
    assert response.json()["symbol"] == ["Unknown symbol 'NOSUCHCOIN'."]


def test_it_reports_type_and_domain_errors_together(staff_client, instruments):
    response = staff_client.post(URL, _body(entry_price="abc", stop_loss="130",
                                            targets=[{"price": "110", "portion": "0.7"},
                                                     {"price": "120", "portion": "0.7"}]), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert errors["entry_price"] == ["A valid number is required."]
    assert any("add up to 1" in m for m in errors["targets"])


def test_it_answers_a_non_object_body_with_400(staff_client, instruments):
    response = staff_client.post(URL, [1, 2], format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


@pytest.fixture
def published(instruments, django_user_model):
    publisher = django_user_model.objects.create_user("pub", password="x")
    from django.contrib.auth.models import Permission

    publisher.user_permissions.add(Permission.objects.get(codename="add_signal"))
    client = _client_for(publisher)
    signal_id = client.post(URL, _body(), format="json").json()["id"]
    return client, signal_id


def test_it_records_an_amendment_and_shows_it_on_the_signal(published):
    client, signal_id = published
    response = client.post(f"{URL}{signal_id}/events/", {"type": "move_stop", "price": 95, "reason": "tighter"},
                           format="json")
    assert response.status_code == 201, response.content
    event = response.json()
    assert (event["type"], event["price"], event["reason"], event["created_by"]) == ("move_stop", "95", "tighter",
                                                                                      "pub")
    signal = client.get(f"{URL}{signal_id}/").json()
    assert signal["effective_stop"] == "95" and signal["stop_loss"] == "90"
    assert signal["events"] == [event]
    assert client.get(f"{URL}{signal_id}/events/").json() == [event]


def test_it_answers_403_to_someone_who_did_not_publish_the_signal(published, reader_client):
    _, signal_id = published
    response = reader_client.post(f"{URL}{signal_id}/events/", {"type": "close"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only the signal's publisher or staff may amend it.",
                               "code": "not_publisher"}
    assert reader_client.get(f"{URL}{signal_id}/events/").status_code == 200  # reading is for everyone


def test_it_answers_409_with_the_reason_for_a_refused_amendment(published):
    client, signal_id = published
    signal_outcome_close(signal_id=signal_id, status="tp_hit", exit_price="120", closed_at=timezone.now())
    response = client.post(f"{URL}{signal_id}/events/", {"type": "cancel"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "closed" and "already closed (tp_hit)" in response.json()["detail"]
    assert not SignalEvent.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"type": "delete"}, "type"),
    ({"type": "move_stop", "price": "abc"}, "price"),
    ({"type": "move_stop"}, "price"),
    ({"type": "move_stop", "price": "80"}, "price"),
    ({"type": "close", "price": "95"}, "price"),
    ({"type": "close", "reason": "x" * 2001}, "reason"),
])
def test_it_answers_a_bad_amendment_with_field_errors(published, body, field):
    client, signal_id = published
    response = client.post(f"{URL}{signal_id}/events/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_it_answers_404_for_amending_a_missing_signal(staff_client, instruments):
    assert staff_client.post(f"{URL}999999/events/", {"type": "close"}, format="json").status_code == 404


def test_it_refuses_anonymous_amendments(published):
    _, signal_id = published
    assert APIClient().post(f"{URL}{signal_id}/events/", {"type": "close"}, format="json").status_code == 401


def test_it_filters_the_list_by_outcome(staff_client, instruments):
    ids = [staff_client.post(URL, _body(), format="json").json()["id"] for _ in range(3)]
    signal_outcome_close(signal_id=ids[1], status="sl_hit", exit_price="90")
    assert [s["id"] for s in staff_client.get(f"{URL}?outcome=sl_hit").json()["results"]] == [ids[1]]
    assert [s["id"] for s in staff_client.get(f"{URL}?outcome=open").json()["results"]] == [ids[2], ids[0]]
    response = staff_client.get(f"{URL}?outcome=won")
    assert response.status_code == 400 and list(response.json()) == ["outcome"]


def test_it_documents_the_lifecycle_in_the_schema(db):
    schema = Client().get("/api/schema/?format=json").json()
    events = schema["paths"]["/api/signals/{id}/events/"]
    assert {"get", "post"} <= set(events)
    assert {"201", "400", "403", "409"} <= set(events["post"]["responses"])
    signal = schema["components"]["schemas"]["Signal"]["properties"]
    assert {"targets", "stop_rule", "trigger", "effective_stop", "events"} <= set(signal)
    assert "legs" in schema["components"]["schemas"]["Outcome"]["properties"]
    listed = {p["name"] for p in schema["paths"]["/api/signals/"]["get"]["parameters"]}
    assert "outcome" in listed


def test_it_does_not_ask_for_take_profit_when_the_ladder_failed_to_parse(staff_client, instruments):
    response = staff_client.post(URL, _body(targets=[{"price": "abc", "portion": "1"}]), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"targets"}, response.json()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_answers_405_to_editing_or_deleting_amendments(published, staff_client, method):
    client, signal_id = published
    client.post(f"{URL}{signal_id}/events/", {"type": "close"}, format="json")
    response = getattr(staff_client, method)(f"{URL}{signal_id}/events/", {"type": "cancel"}, format="json")
    assert response.status_code == 405
    assert list(SignalEvent.objects.values_list("type", flat=True)) == ["close"]
