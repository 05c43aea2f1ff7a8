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


class ApiPublisher:
    """Creates signals through `POST /api/signals/` from its own thread, round-robin
    over the given web processes, until stopped: what a steady publisher sees. Every
    201 is recorded; refused or failed requests are counted, never retried blindly."""

    def __init__(self, servers, token: str, interval: float = 0.05) -> None:
        import threading

        self.servers, self.token, self.interval = list(servers), token, interval
        self.created: list[int] = []
        self.failures: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            server = self.servers[turn % len(self.servers)]
            turn += 1
            try:
                status, _, body = http("POST", f"{server.http_url}/api/signals/", token=self.token,
                                       body=SIGNAL_BODY, timeout=5)
            except OSError:
                status, body = 0, b""
            if status == 201:
                self.created.append(json.loads(body)["id"])
            else:
                self.failures[status] = self.failures.get(status, 0) + 1
            self._stop.wait(self.interval)

    def start(self) -> "ApiPublisher":
        self._thread.start()
        return self

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.created


class DirectPublisher:
    """Creates signals through `signal_create` on its own thread and DB connection (as
    a Celery worker would), pacing itself, until stopped."""

    def __init__(self, interval: float = 0.05, source: str = "worker") -> None:
        import threading

        self.interval, self.source = interval, source
        self.created: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from django.db import connection

        from signals.services import signal_create

        try:
            while not self._stop.is_set():
                self.created.append(signal_create(**SIGNAL_BODY, source=self.source).signal.id)
                self._stop.wait(self.interval)
        finally:
            connection.close()

    def start(self) -> "DirectPublisher":
        self._thread.start()
        return self

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.created
