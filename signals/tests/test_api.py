"""POST /api/signals/: the contract's JSON shape, every bad input answered with 400 and
field errors (never a 500), who may publish, CSRF for sessions, and the throttle."""
from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.test import APIClient

from signals.api.views import SignalCreateThrottle
from signals.models import Signal

pytestmark = pytest.mark.django_db
URL = "/api/signals/"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
SIGNAL_KEYS = {"id", "symbol", "market", "direction", "entry_price", "stop_loss", "take_profit", "confidence",
               "timeframe", "source", "note", "created_at", "expires_at", "outcome",
               # the signal lifecycle contract
               "targets", "stop_rule", "trigger", "effective_stop", "events"}


def _body(**overrides):
    body = {"symbol": "BTCUSDT", "direction": "long", "entry_price": "65000.5", "stop_loss": "64000",
            "take_profit": "67000", "confidence": 80, "timeframe": "4h", "note": "breakout"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def _post_raw(client, raw: str, content_type="application/json"):
    return client.post(URL, data=raw, content_type=content_type)


# --- the happy path -----------------------------------------------------------------------

def test_it_creates_a_signal_with_the_contract_shape(staff_client, instruments):
    response = staff_client.post(URL, _body(), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == SIGNAL_KEYS
    assert data["symbol"] == "BTCUSDT" and data["market"] == "crypto" and data["direction"] == "long"
    assert (data["entry_price"], data["stop_loss"], data["take_profit"]) == ("65000.5", "64000", "67000")
    assert data["confidence"] == 80 and data["timeframe"] == "4h" and data["source"] == "manual"
    assert data["note"] == "breakout" and data["expires_at"] is None
    assert ISO_UTC.match(data["created_at"]), data["created_at"]
    assert data["outcome"] == {"status": "open", "closed_at": None, "exit_price": None, "r_multiple": None,
                               "stop_price": "64000", "mfe_r": None, "mae_r": None,
                               "legs": [{"target": "67000", "portion": "1", "status": "open", "closed_at": None,
                                         "exit_price": None, "r": None}]}
    assert data["targets"] == [{"price": "67000", "portion": "1"}] and data["stop_rule"] == {"type": "fixed"}
    assert data["trigger"] is None and data["events"] == [] and data["effective_stop"] == "64000"
    assert response["Location"] == f"/api/signals/{data['id']}/"
    signal = Signal.objects.get(pk=data["id"])
    assert signal.created_by.username == "staff"
    # What the creator was told is what every later reader sees.
    assert staff_client.get(f"{URL}{data['id']}/").json() == data


def test_it_keeps_json_number_prices_exact(staff_client, instruments):
    raw = '{"symbol":"SOLUSDT","direction":"short","entry_price":0.3,"stop_loss":0.31,' \
          '"take_profit":0.1,"confidence":55,"expires_at":"2999-01-01T10:00:00+02:00"}'
    response = _post_raw(staff_client, raw)
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["entry_price"], data["stop_loss"], data["take_profit"]) == ("0.3", "0.31", "0.1")
    assert data["expires_at"] == "2999-01-01T08:00:00Z"


def test_it_ignores_read_only_fields_in_the_body(staff_client, instruments, signal_factory):
    existing = signal_factory()
    response = staff_client.post(URL, _body(id=existing.id, created_at="2001-01-01T00:00:00Z", market="forex",
                                            outcome={"status": "tp_hit"}), format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["id"] > existing.id and data["market"] == "crypto" and data["outcome"]["status"] == "open"
    assert not data["created_at"].startswith("2001")


def test_it_accepts_a_form_encoded_post(staff_client, instruments):
    response = staff_client.post(URL, _body(), format="multipart")
    assert response.status_code == 201, response.content


# --- bad input: 400 with field errors, never a 500 ----------------------------------------

@pytest.mark.parametrize("raw", [
    "{not json", "", "null", "[]", "[1, 2]", '"a string"', "42",
    '{"symbol": "BTCUSDT", "entry_price": NaN}',
    '{"symbol": "BTCUSDT", "entry_price": Infinity}',
    '{"symbol": "BTCUSDT", "entry_price": -Infinity}',
    "{" + '"a":' * 1 + "1" * 5000 + "}",
], ids=["garbage", "empty", "null", "empty-list", "list", "string", "number", "NaN", "Infinity",
        "-Infinity", "5000-digit-number"])
def test_it_answers_malformed_json_with_400(staff_client, instruments, raw):
    response = _post_raw(staff_client, raw)
    assert response.status_code == 400, response.content
    assert isinstance(response.json(), dict) and response.json()
    assert Signal.objects.count() == 0


def test_it_answers_an_unsupported_content_type_with_415(staff_client, instruments):
    response = _post_raw(staff_client, json.dumps(_body()), content_type="text/plain")
    assert response.status_code == 415
    assert Signal.objects.count() == 0


@pytest.mark.parametrize("field", ["symbol", "direction", "entry_price", "stop_loss", "take_profit", "confidence"])
def test_it_names_each_missing_required_field(staff_client, instruments, field):
    response = staff_client.post(URL, _body(**{field: ...}), format="json")
    assert response.status_code == 400
    assert response.json() == {field: ["This field is required."]}


def test_it_names_every_missing_field_of_an_empty_object(staff_client, instruments):
    response = _post_raw(staff_client, "{}")
    assert response.status_code == 400
    assert set(response.json()) == {"symbol", "direction", "entry_price", "stop_loss", "take_profit", "confidence"}


@pytest.mark.parametrize("field, value", [
    ("entry_price", "abc"), ("entry_price", "NaN"), ("entry_price", "Infinity"), ("entry_price", "-1"),
    ("entry_price", 0), ("entry_price", "1e20"), ("entry_price", 1e300), ("entry_price", 10 ** 30),
    ("entry_price", "0.00000000001"), ("entry_price", True), ("entry_price", [1]), ("entry_price", {"a": 1}),
    ("entry_price", None), ("entry_price", "1" * 41),
    ("stop_loss", "66000"), ("take_profit", "60000"), ("take_profit", "x"),
    ("confidence", "high"), ("confidence", 101), ("confidence", -1), ("confidence", 70.5),
    ("confidence", 10 ** 30), ("confidence", None), ("confidence", [70]), ("confidence", "NaN"),
    ("symbol", "NOPEUSDT"), ("symbol", ["BTCUSDT"]), ("symbol", {"s": 1}), ("symbol", ""), ("symbol", "x" * 33),
    ("symbol", "BTC\x00USDT"),
    ("direction", "up"), ("direction", 5), ("direction", None),
    ("timeframe", "2h"), ("timeframe", 60),
    ("source", ""), ("source", "s" * 65), ("source", ["a"]),
    ("note", "n" * 2001), ("note", {"a": 1}), ("note", "nul\x00byte"),
    ("expires_at", "tomorrow"), ("expires_at", "2001-01-01T00:00:00Z"), ("expires_at", 12345),
], ids=lambda v: repr(v)[:40])
def test_it_answers_each_bad_field_with_a_field_error(staff_client, instruments, field, value):
    response = staff_client.post(URL, _body(**{field: value}), format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert all(isinstance(m, str) and m for m in errors[field])
    assert Signal.objects.count() == 0


@pytest.mark.parametrize("raw, field", [
    ('{"symbol":"BTCUSDT","direction":"long","entry_price":1e400,"stop_loss":1,"take_profit":2,"confidence":1}',
     "entry_price"),
    ('{"symbol":"BTCUSDT","direction":"long","entry_price":2,"stop_loss":1,"take_profit":3,"confidence":1e400}',
     "confidence"),
    ('{"symbol":"BTCUSDT","direction":"long","entry_price":2,"stop_loss":1e-400,"take_profit":3,"confidence":1}',
     "stop_loss"),
])
def test_it_answers_out_of_range_json_numbers_with_a_field_error(staff_client, instruments, raw, field):
    response = _post_raw(staff_client, raw)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_it_refuses_prices_finer_than_the_column_instead_of_rounding_them(staff_client, instruments):
    # NUMERIC(24, 10) would round these to 0 and the check constraint would turn that into a 500.
    response = staff_client.post(URL, _body(entry_price="0.00000000002", stop_loss="0.00000000001",
                                            take_profit="0.00000000003"), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"entry_price", "stop_loss", "take_profit"}
    assert "decimal places" in response.json()["entry_price"][0]


def test_it_explains_wrong_levels_for_a_short(staff_client, instruments):
    response = staff_client.post(URL, _body(direction="short"), format="json")
    assert response.status_code == 400
    assert response.json() == {
        "stop_loss": ["For a short signal the stop-loss must be above the entry price."],
        "take_profit": ["For a short signal the take-profit must be below the entry price."],
    }


# --- who may publish -------------------------------------------------------------------------

def test_it_refuses_anonymous_reads_and_writes(instruments, signal_factory):
    client = APIClient()
    signal = signal_factory()
    for response in (client.get(URL), client.get(f"{URL}{signal.id}/"), client.post(URL, _body(), format="json")):
        assert response.status_code in (401, 403)
    assert Signal.objects.count() == 1


def test_it_refuses_a_bad_token(instruments):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(URL).status_code in (401, 403)


def test_it_lets_a_reader_read_but_not_publish(reader_client, instruments, signal_factory):
    signal_factory()
    assert reader_client.get(URL).status_code == 200
    response = reader_client.post(URL, _body(), format="json")
    assert response.status_code == 403
    assert "signals.add_signal" in response.json()["detail"]
    assert Signal.objects.count() == 1


def test_it_lets_a_user_with_the_add_permission_publish(reader_client, reader_user, instruments):
    reader_user.user_permissions.add(Permission.objects.get(codename="add_signal", content_type__app_label="signals"))
    response = reader_client.post(URL, _body(), format="json")
    assert response.status_code == 201, response.content


def test_it_refuses_an_inactive_staff_token(staff_client, staff_user, instruments):
    staff_user.is_active = False
    staff_user.save()
    assert staff_client.post(URL, _body(), format="json").status_code in (401, 403)


def test_it_requires_csrf_for_session_posts(staff_user, instruments):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    response = browser.post(URL, _body(), format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    browser.get(URL, HTTP_ACCEPT="text/html")  # the browsable API sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(URL, _body(), format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content


# --- throttle ------------------------------------------------------------------------------------

def test_it_throttles_creation_per_user(staff_client, staff_user, reader_client, reader_user, instruments,
                                        monkeypatch):
    monkeypatch.setattr(SignalCreateThrottle, "THROTTLE_RATES", {"signal_create": "2/min"})
    reader_user.is_staff = True
    reader_user.save()
    for user in (staff_user, reader_user):
        cache.delete(f"throttle_signal_create_{user.pk}")
    assert [staff_client.post(URL, _body(), format="json").status_code for _ in range(3)] == [201, 201, 429]
    assert staff_client.get(URL).status_code == 200  # reads are not throttled
    assert reader_client.post(URL, _body(), format="json").status_code == 201  # per user
    assert Signal.objects.count() == 3
