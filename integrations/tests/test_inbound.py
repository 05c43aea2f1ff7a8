"""Inbound alerts over real HTTP requests to the view: both formats, malformed ones
(400 with the reason, logged), duplicates within and after the window, revoked and
unknown tokens, the per-token rate limit and the token command."""
from __future__ import annotations

import datetime as dt
import json
import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from integrations.inbound import equal_portions
from integrations.models import InboundAlertLog, InboundToken
from integrations.services import inbound_token_create, inbound_token_revoke
from signals.models import Signal

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(staff_user, instruments):
    _, raw = inbound_token_create(source="tradingview", publisher=staff_user)
    return raw


def _post(raw, body, content_type="application/json"):
    data = json.dumps(body) if isinstance(body, dict) else body
    return Client(enforce_csrf_checks=True).post(f"/api/inbound/{raw}/", data=data, content_type=content_type)


def test_it_turns_a_json_alert_into_a_signal_of_the_tokens_source(token, staff_user):
    answer = _post(token, {"symbol": "btcusdt", "direction": "long", "entry_price": 65000, "stop_loss": 64000,
                           "take_profit": 67000, "confidence": 80, "timeframe": "15m", "alert_id": "tv-1"})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    signal = Signal.objects.get(pk=body["id"])
    assert (signal.symbol, signal.source, signal.created_by, signal.timeframe) == (
        "BTCUSDT", "tradingview", staff_user, "15m")
    assert body["entry_price"] == "65000" and body["take_profit"] == "67000"
    log = InboundAlertLog.objects.get()
    assert (log.result, log.http_status, log.signal_id, log.dedup_key) == ("accepted", 201, signal.id, "id:tv-1")


def test_it_reads_the_text_template_with_a_ladder(token):
    text = 'ETHUSDT short entry=3000 sl=3100 tp=2900,2800,2700 conf=65 tf=1h id=abc note="RSI 78, fading"'
    answer = _post(token, text, content_type="text/plain")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["direction"], body["stop_loss"], body["take_profit"], body["confidence"]) == (
        "short", "3100", "2700", 65)
    assert [t["price"] for t in body["targets"]] == ["2900", "2800", "2700"]
    assert [t["portion"] for t in body["targets"]] == ["0.3333", "0.3333", "0.3334"]
    assert body["note"] == "RSI 78, fading" and body["source"] == "tradingview"


def test_it_splits_a_ladder_into_portions_summing_to_one():
    from decimal import Decimal

    for count in range(1, 9):
        portions = [Decimal(p) for p in equal_portions(count)]
        assert sum(portions) == 1 and all(p > 0 for p in portions)


@pytest.mark.parametrize("body, field, words", [
    ("BTCUSDT sideways entry=1 sl=1 tp=2 conf=5", "direction", "not a direction"),
    ("BTCUSDT long entry=65000 stoploss=64000 tp=66000 conf=80", "body", "Unknown part 'stoploss=64000'"),
    ("BTCUSDT long entry=65000 sl=66000 tp=67000 conf=80", "stop_loss", "below the entry"),
    ("NOSUCH long entry=1 sl=0.5 tp=2 conf=80", "symbol", "Unknown symbol"),
    ('{"symbol": "BTCUSDT", "direction": "long"', "body", "Malformed JSON"),
    ('{"symbol": "BTCUSDT", "direction": "long", "entry_price": 1, "stop_loss": 0.5, "take_profit": 2, '
     '"confidence": 80, "source": "me"}', "source", "set by the token"),
    ('{"symbol": "BTCUSDT", "direction": "long", "entry": 1}', "body", "Unknown field(s) entry"),
    ("", "body", "empty"),
])
def test_it_answers_400_with_the_reason_and_logs_a_malformed_alert(token, body, field, words):
    answer = _post(token, body, content_type="text/plain")
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert words in " ".join(errors[field]), errors
    assert not Signal.objects.exists()
    log = InboundAlertLog.objects.get()
    assert log.result == "rejected" and log.http_status == 400 and words in log.error


def test_it_answers_a_repeat_within_the_window_with_the_first_signal(token, settings):
    settings.INBOUND_DEDUP_SECONDS = 300
    text = "BTCUSDT long entry=65000 sl=64000 tp=66000 conf=80"
    first = _post(token, text, content_type="text/plain")
    again = _post(token, text, content_type="text/plain")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    # The same alert id with another body is the same alert too.
    by_id = [_post(token, f"BTCUSDT long entry={e} sl=64000 tp=66000 conf=80 id=x1", content_type="text/plain")
             for e in ("65000", "65001")]
    assert [a.status_code for a in by_id] == [201, 200] and by_id[0].json()["id"] == by_id[1].json()["id"]
    assert Signal.objects.count() == 2
    assert list(InboundAlertLog.objects.order_by("id").values_list("result", flat=True)) == [
        "accepted", "duplicate", "accepted", "duplicate"]


def test_it_makes_a_new_signal_for_a_repeat_after_the_window(token, settings):
    settings.INBOUND_DEDUP_SECONDS = 300
    text = "BTCUSDT long entry=65000 sl=64000 tp=66000 conf=80 id=daily"
    first = _post(token, text, content_type="text/plain").json()["id"]
    InboundAlertLog.objects.update(received_at=InboundAlertLog.objects.get().received_at - dt.timedelta(seconds=301))
    later = _post(token, text, content_type="text/plain")
    assert later.status_code == 201 and later.json()["id"] != first


def test_it_refuses_revoked_and_unknown_tokens_with_401(token):
    inbound_token_revoke(token=InboundToken.objects.get())
    text = "BTCUSDT long entry=65000 sl=64000 tp=66000 conf=80"
    assert _post(token, text, content_type="text/plain").status_code == 401
    assert _post("itk_nosuchtoken", text, content_type="text/plain").status_code == 401
    assert not Signal.objects.exists() and not InboundAlertLog.objects.exists()


def test_it_rate_limits_per_token_with_retry_after(token, staff_user, settings):
    settings.INBOUND_RATE = "2/min"
    _, other = inbound_token_create(source="other", publisher=staff_user)
    answers = [_post(token, f"BTCUSDT long entry={65000 + i} sl=64000 tp=66000 conf=80", content_type="text/plain")
               for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    # Another token has its own budget.
    assert _post(other, "BTCUSDT long entry=1 sl=0.5 tp=2 conf=80", content_type="text/plain").status_code == 201


def test_it_refuses_a_token_whose_publisher_may_not_publish(reader_user, instruments):
    _, raw = inbound_token_create(source="tv", publisher=reader_user)
    answer = _post(raw, "BTCUSDT long entry=65000 sl=64000 tp=66000 conf=80", content_type="text/plain")
    assert answer.status_code == 403 and "may not publish" in answer.json()["detail"]


def test_it_answers_only_post(token):
    assert Client().get(f"/api/inbound/{token}/").status_code == 405


def test_the_command_prints_the_token_once_and_stores_only_its_hash(staff_user, instruments):
    out, err = StringIO(), StringIO()
    call_command("inbound_token_create", "tradingview", "--user", "staff", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    row = InboundToken.objects.get()
    assert raw.startswith("itk_") and raw not in (row.token_hash, row.prefix) and row.publisher == staff_user
    assert "shown once" in err.getvalue()
    alert = "BTCUSDT long entry=65000 sl=64000 tp=66000 conf=80"
    assert _post(raw, alert, content_type="text/plain").status_code == 201
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("inbound_token_create", "tv", "--user", "ghost")
    with pytest.raises(CommandError, match="source"):
        call_command("inbound_token_create", " ")


def test_it_never_logs_the_token_that_is_the_url(token, caplog):
    with caplog.at_level(logging.DEBUG):
        assert _post(token, "BTCUSDT sideways", content_type="text/plain").status_code == 400
        inbound_token_revoke(token=InboundToken.objects.get())
        assert _post(token, "BTCUSDT long entry=1 sl=0.5 tp=2 conf=5", content_type="text/plain").status_code == 401
    assert "inbound alert answered 400" in caplog.text and "inbound alert answered 401" in caplog.text
    assert token not in caplog.text and token[8:] not in caplog.text


def test_the_schema_documents_the_inbound_door_with_every_answer_it_gives(token):
    schema = Client().get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/inbound/{token}/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Signal"}
    alert = {"symbol": "BTCUSDT", "direction": "long", "entry_price": 65000, "stop_loss": 64000,
             "take_profit": 67000, "confidence": 80, "alert_id": "schema-1"}
    given = {
        _post(token, alert).status_code,  # 201
        _post(token, alert).status_code,  # 200: the same alert again
        _post(token, {"symbol": "BTCUSDT"}).status_code,  # 400
        _post("no-such-token", alert).status_code,  # 401
        _post(token, "x" * 20000, content_type="text/plain").status_code,  # 413
        Client().get(f"/api/inbound/{token}/").status_code,  # 405
    }
    assert given == {201, 200, 400, 401, 413, 405}
    assert given <= {int(code) for code in operation["responses"]}
