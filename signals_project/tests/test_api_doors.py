"""The HTTP doors as a client sees them over real daphne: 401 with a challenge for
anonymous calls, a proper "429 Too Many Requests" status line, offline API docs, the
SSE stream in the schema, a throttled login form and CSRF for session writes."""
from __future__ import annotations

import http.client
import re
import uuid
from http import HTTPStatus
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import DaphneProcess
from signals_project import http_reasons


def _request(server: DaphneProcess, method: str, path: str, body: str | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


@pytest.fixture
def throttled_daphne(transactional_db):
    server = DaphneProcess(extra_env={"SIGNAL_CREATE_RATE": "1/min",
                                      "CACHE_KEY_PREFIX": f"doors-{uuid.uuid4().hex}"}).start()
    yield server
    server.stop()


def test_it_answers_anonymous_api_calls_401_with_a_token_challenge(db):
    for response in (APIClient().get("/api/signals/"), APIClient().post("/api/signals/", {}, format="json"),
                     APIClient().get("/api/stats/")):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"


def test_it_sends_real_reason_phrases_over_daphne(throttled_daphne):
    user = get_user_model().objects.create_user("publisher", password="pw-123456789", is_staff=True)
    token = Token.objects.create(user=user).key

    anonymous = _request(throttled_daphne, "GET", "/api/signals/")
    assert (anonymous.status, anonymous.reason) == (401, "Unauthorized")
    assert anonymous.getheader("WWW-Authenticate") == "Token"

    auth = {"Authorization": f"Token {token}"}
    first = _request(throttled_daphne, "POST", "/api/signals/", "{}", auth)
    assert first.status == 400, first.body  # counted by the throttle all the same
    throttled = _request(throttled_daphne, "POST", "/api/signals/", "{}", auth)
    assert (throttled.status, throttled.reason) == (429, "Too Many Requests"), throttled.body
    assert int(throttled.getheader("Retry-After")) > 0


def test_it_completes_twisteds_reason_phrase_table():
    from twisted.web import http as twisted_http

    http_reasons.apply()
    assert http_reasons.missing_reason_phrases() == {}
    assert twisted_http.RESPONSES[429] == b"Too Many Requests"
    assert twisted_http.RESPONSES[200] == b"OK"  # Twisted's own phrases are kept
    assert all(status.value in twisted_http.RESPONSES for status in HTTPStatus)


def test_it_serves_the_api_docs_without_any_outside_host(shared_daphne, transactional_db):
    page = _request(shared_daphne, "GET", "/api/docs/")
    assert page.status == 200
    html = page.body.decode()
    assert "swagger-ui" in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r'"(/static/[^"]+)"', html)
    assert urls, html
    for url in urls:
        parsed = urlparse(url)
        assert not parsed.netloc, f"/api/docs/ loads {url} from another host"
        if parsed.path.startswith("/static/"):
            asset = _request(shared_daphne, "GET", parsed.path)
            assert asset.status == 200, url


def test_it_documents_the_sse_stream_in_the_schema(staff_client):
    response = staff_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/signals/stream/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"after_id", "after_event_id", "symbol", "market",
                                                             "Last-Event-ID"}
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert set(operation["responses"]) == {"200", "400", "401", "409"}  # 409: resync (after_id ahead)


def test_it_throttles_brute_force_logins_per_username_and_address(client, django_user_model, settings):
    django_user_model.objects.create_user("victim", password="right-pass-123")
    django_user_model.objects.create_user("bystander", password="other-pass-123")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    locked = client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
    assert locked.status_code == 429
    # Even the right password is refused while locked: guessing cannot continue.
    assert client.post("/accounts/login/", {"username": "victim", "password": "right-pass-123"}).status_code == 429
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked out by someone else's attempts.
    other = client.post("/accounts/login/", {"username": "bystander", "password": "other-pass-123"})
    assert other.status_code == 302 and client.session["_auth_user_id"]


def test_it_refuses_a_session_post_without_csrf_over_daphne(shared_daphne, transactional_db, instruments):
    from django.test import Client

    get_user_model().objects.create_user("browser", password="browser-pass-123", is_staff=True)
    browser = Client()
    assert browser.login(username="browser", password="browser-pass-123")
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    body = ('{"symbol":"BTCUSDT","direction":"long","entry_price":"100","stop_loss":"90",'
            '"take_profit":"120","confidence":70,"timeframe":"1h"}')
    response = _request(shared_daphne, "POST", "/api/signals/", body, {"Cookie": cookie})
    assert response.status == 403 and b"CSRF" in response.body
    from signals.models import Signal

    assert Signal.objects.count() == 0
    # The same cookie may read: it is the write without a CSRF token that is refused.
    assert _request(shared_daphne, "GET", "/api/signals/", headers={"Cookie": cookie}).status == 200
