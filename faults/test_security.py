"""Security doors over a real daphne: anonymous and foreign-Origin cookie WebSocket
handshakes refused, session POST without CSRF refused, non-staff create refused,
100 concurrent POSTs with one Idempotency-Key make exactly one row with identical
answers, and no token, session id or password ever reaches the log."""
from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from conftest import DaphneProcess
from faults.conftest import SIGNAL_BODY, http
from signals.models import Signal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def server(staff_api_token):
    process = DaphneProcess(extra_env={"SIGNAL_CREATE_RATE": "100000/min", "WEB_MAX_CONCURRENT_REQUESTS": "8"}).start()
    yield process
    process.stop()


def _session_cookie(client, username: str) -> str:
    client.force_login(get_user_model().objects.get(username=username))
    return client.cookies["sessionid"].value


async def _handshake_status(url: str, headers: dict[str, str], origin: str | None) -> int:
    try:
        async with websockets.connect(url, additional_headers=headers, origin=origin, open_timeout=10):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


def test_it_keeps_every_door_shut_and_no_secret_in_the_log(server, staff_api_token, client):
    reader = get_user_model().objects.create_user("reader-sec", password="reader-pass-123456")
    reader_token = Token.objects.create(user=reader).key
    session = _session_cookie(client, "faults-staff")
    url = f"{server.ws_url}/ws/signals/"

    async def _all():
        return await asyncio.gather(*checks)

    checks = [
        _handshake_status(url, {}, None),
        _handshake_status(url, {}, server.http_url),
        _handshake_status(url, {"Cookie": f"sessionid={session}"}, "http://evil.example.com"),
        _handshake_status(url, {"Cookie": f"sessionid={session}"}, None),
        _handshake_status(url, {"Cookie": f"sessionid={session}"}, f"http://127.0.0.1:{server.port}"),
        _handshake_status(url, {"Authorization": f"Token {staff_api_token}"}, None),
    ]
    statuses = asyncio.run(_all())
    assert statuses == [403, 403, 403, 403, 101, 101]

    # A session cookie alone cannot create: CSRF protection applies to cookie auth.
    status, _, body = http("POST", f"{server.http_url}/api/signals/", body=SIGNAL_BODY,
                           headers={"Cookie": f"sessionid={session}"})
    assert status == 403 and b"CSRF" in body
    # Any logged-in user may read, only staff may create.
    assert http("GET", f"{server.http_url}/api/signals/", token=reader_token)[0] == 200
    assert http("POST", f"{server.http_url}/api/signals/", token=reader_token, body=SIGNAL_BODY)[0] == 403
    assert http("POST", f"{server.http_url}/api/signals/", body=SIGNAL_BODY)[0] == 401

    # 100 concurrent POSTs with one Idempotency-Key: one row, the same answer to all.
    before = Signal.objects.count()
    key = str(uuid.uuid4())

    def _post(_):
        return http("POST", f"{server.http_url}/api/signals/", token=staff_api_token, body=SIGNAL_BODY,
                    headers={"Idempotency-Key": key}, timeout=60)

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(_post, range(100)))
    assert {status for status, _, _ in answers} <= {200, 201}
    bodies = {json.dumps(json.loads(body), sort_keys=True) for _, _, body in answers}
    assert len(bodies) == 1
    assert Signal.objects.count() == before + 1

    server.stop()  # flush the log
    log = server.log_path.read_text(errors="replace")
    for secret in (staff_api_token, reader_token, session, "reader-pass-123456", "pw-123456-faults"):
        assert secret not in log
