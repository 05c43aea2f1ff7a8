"""Fixtures for the fault suite: scaled client counts, a staff token, HTTP helpers.

FAULTS_SCALE multiplies every client count (default 0.25 keeps the suite inside
CI's time on a 2-core machine; FAULTS_SCALE=1 runs the full counts that
RELIABILITY.md records)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

SIGNAL_BODY = {"symbol": "BTCUSDT", "direction": "long", "entry_price": "100", "stop_loss": "90",
               "take_profit": "120", "confidence": 70}


def faults_scale() -> float:
    raw = os.environ.get("FAULTS_SCALE", "0.25")
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"FAULTS_SCALE={raw!r} is not a number (e.g. 0.25 or 1)") from None
    if not 0 < value <= 10:
        raise pytest.UsageError(f"FAULTS_SCALE={raw!r} must be in (0, 10]")
    return value


def scaled(count: int, minimum: int = 10) -> int:
    return max(minimum, int(count * faults_scale()))


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for every status, 5xx too."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def staff_api_token(transactional_db):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from signals.services import demo_instruments_seed

    demo_instruments_seed()
    user = get_user_model().objects.create_user("faults-staff", password="pw-123456-faults", is_staff=True)
    return Token.objects.create(user=user).key


def signal_ids() -> list[int]:
    from signals.models import Signal

    return list(Signal.objects.order_by("id").values_list("id", flat=True))
