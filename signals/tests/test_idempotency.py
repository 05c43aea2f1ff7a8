"""Idempotency-Key on POST /api/signals/: a retry returns the first signal, a reused key
with another body is a 409, keys belong to one user, and simultaneous retries on real
PostgreSQL still create exactly one signal."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from signals.models import IdempotencyRecord, Signal
from signals.services import IdempotencyConflict, signal_create

URL = "/api/signals/"
BODY = {"symbol": "ETHUSDT", "direction": "long", "entry_price": "3000", "stop_loss": "2900",
        "take_profit": "3300", "confidence": 60}


def _post(client, key, body=None):
    return client.post(URL, body or BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_it_returns_the_first_signal_for_a_repeated_key(staff_client, instruments):
    first = _post(staff_client, "order-1")
    again = _post(staff_client, "order-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Signal.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db
def test_it_treats_equal_numbers_as_the_same_body(staff_client, instruments):
    first = _post(staff_client, "order-2")
    again = _post(staff_client, "order-2", {**BODY, "entry_price": 3000, "stop_loss": "2900.00",
                                             "symbol": "ethusdt"})
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert Signal.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"take_profit": "3400"}, {"confidence": 61}, {"note": "x"},
                                    {"symbol": "BTCUSDT", "entry_price": "3000"}, {"timeframe": "1d"}])
def test_it_answers_409_when_a_key_is_reused_with_another_body(staff_client, instruments, change):
    first = _post(staff_client, "order-3")
    response = _post(staff_client, "order-3", {**BODY, **change})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "idempotency_key_reused"
    assert "different request body" in body["detail"] and "new key" in body["detail"]
    assert list(Signal.objects.values_list("id", flat=True)) == [first.json()["id"]]


@pytest.mark.django_db
def test_it_keeps_keys_per_user(staff_client, instruments, django_user_model):
    other = django_user_model.objects.create_user("other-staff", is_staff=True)
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other).key}")
    mine = _post(staff_client, "shared-key")
    theirs = _post(other_client, "shared-key", {**BODY, "confidence": 99})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert Signal.objects.count() == 2


@pytest.mark.django_db
def test_it_creates_a_new_signal_for_a_new_key_or_no_key(staff_client, instruments):
    ids = {_post(staff_client, key).json()["id"] for key in ("a", "b")}
    ids |= {staff_client.post(URL, BODY, format="json").json()["id"] for _ in range(2)}
    assert len(ids) == 4


@pytest.mark.django_db
def test_it_lets_a_corrected_retry_reuse_the_key_of_a_rejected_request(staff_client, instruments):
    rejected = _post(staff_client, "order-4", {**BODY, "stop_loss": "3100"})
    assert rejected.status_code == 400
    assert _post(staff_client, "order-4").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256])
def test_it_answers_a_bad_key_with_400(staff_client, instruments, key):
    response = _post(staff_client, key)
    assert response.status_code == 400 and "idempotency_key" in response.json()
    assert Signal.objects.count() == 0


@pytest.mark.django_db
def test_it_applies_the_same_rule_in_the_service(staff_user, instruments):
    first = signal_create(**BODY, created_by=staff_user, idempotency_key="svc")
    again = signal_create(**BODY, created_by=staff_user, idempotency_key="svc")
    assert first.created and not again.created and again.signal.id == first.signal.id
    with pytest.raises(IdempotencyConflict):
        signal_create(**{**BODY, "confidence": 1}, created_by=staff_user, idempotency_key="svc")


def _race(token: str, bodies: list[dict]) -> list:
    """POST each body with the same key from its own thread and connection, all at once."""
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def worker(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(timeout=10)
            response = _post(client, "race-key", bodies[i])
            results[i] = (response.status_code, response.json())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_signal_for_simultaneous_retries(staff_token, instruments):
    results = _race(staff_token, [BODY] * 8)
    assert all(isinstance(r, tuple) for r in results), results
    assert {status for status, _ in results} == {201}
    assert len({body["id"] for _, body in results}) == 1
    assert Signal.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_simultaneous_different_bodies_win(staff_token, instruments):
    results = _race(staff_token, [{**BODY, "confidence": c} for c in range(8)])
    assert all(isinstance(r, tuple) for r in results), results
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 7
    winner = next(body for status, body in results if status == 201)
    assert list(Signal.objects.values_list("id", "confidence")) == [(winner["id"], winner["confidence"])]
