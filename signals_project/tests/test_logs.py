"""Structured logs (signals_project.logs): JSON lines with request and connection
ids, and no secret, token, password or webhook secret ever written."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signals_project.logs import ContextFilter, connection_id_var, connection_ids, redact

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "api token header": ("Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b09199c62bcf"),
    "bearer": ("Bearer s3cr3t-metrics-token-value", "s3cr3t-metrics"),
    "webhook secret": ("created endpoint, secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqr"),
    "password kv": ("login failed for bob password=hunter2-hunter2", "hunter2"),
    "json secret": ('{"url": "https://x.example/h", "secret": "abc123def456"}', "abc123def456"),
    "telegram bot token": ("POST https://api.telegram.org/bot123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0/send",
                           "AAHfiqksKZ8WmR2zSjiQ7"),
    "discord webhook": ("POST https://discord.com/api/webhooks/112233445566/Xy_z-TOKENtokenTOKEN123", "TOKENtoken"),
    "query token": ("GET /ws/signals/?token=abcdef0123456789&after_id=3", "abcdef0123456789"),
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_it_redacts_each_kind_of_secret(name):
    text, secret = SECRETS[name]
    cleaned = redact(text)
    assert secret not in cleaned and "[redacted]" in cleaned


def test_it_keeps_ordinary_messages_intact():
    text = "market crypto: READY -> ACTIVE (streaming 2 symbols); signal 42 BTCUSDT long at 100.5"
    assert redact(text) == text


def _run_and_log(env_extra: dict[str, str], code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_it_writes_json_lines_without_secrets_through_the_configured_handler():
    code = (
        "import logging\n"
        "log = logging.getLogger('pipeline.test')\n"
        "log.warning('delivering with %s and %s', 'Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b', "
        "'secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')\n"
        "try:\n"
        "    raise ValueError('bad password=hunter2-hunter2')\n"
        "except ValueError:\n"
        "    log.exception('failed')\n"
    )
    result = _run_and_log({"LOG_FORMAT": "json"}, code)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line["logger"] == "pipeline.test"]
    assert [line["level"] for line in ours] == ["WARNING", "ERROR"]
    assert ours[0]["request_id"] == "-" and ours[0]["connection_id"] == "-" and "time" in ours[0]
    assert "[redacted]" in ours[0]["message"]
    assert "ValueError" in ours[1]["exc_info"]
    for secret in ("9944b09199c62bcf", "MfKQ9r8GKYqr", "hunter2"):
        assert secret not in result.stderr


def test_it_refuses_an_unknown_log_format():
    env = dict(os.environ, LOG_FORMAT="xml", DJANGO_SETTINGS_MODULE="signals_project.settings")
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "LOG_FORMAT='xml' must be one of: text, json" in result.stderr


@pytest.mark.django_db
def test_it_tags_a_requests_log_lines_with_its_request_id(client):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-42.a")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 404 and response["X-Request-ID"] == "req-42.a"
    assert records and all(r.request_id == "req-42.a" for r in records)
    # An unusable incoming id is replaced, never echoed.
    response = client.get("/health/live/", HTTP_X_REQUEST_ID="x" * 200 + "\n")
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"] != "x" * 200


def test_it_gives_each_websocket_connection_its_own_id():
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(connection_id_var.get())

    wrapped = connection_ids(app)

    async def scenario():
        await wrapped({"type": "websocket"}, None, None)
        await wrapped({"type": "websocket"}, None, None)
        await wrapped({"type": "http"}, None, None)

    asyncio.run(scenario())
    assert seen[0].startswith("ws-") and seen[1].startswith("ws-") and seen[0] != seen[1]
    assert seen[2] == "-" and connection_id_var.get() == "-"


@pytest.mark.django_db
def test_it_does_not_log_a_health_503_as_a_server_error(client, settings):
    from conftest import free_port

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("django.request")
    handler = Keep()
    logger.addHandler(handler)
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
        assert client.get("/health/ready/").status_code == 503
        assert client.get("/no-such-page/").status_code == 404
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["Not Found: /no-such-page/"]
