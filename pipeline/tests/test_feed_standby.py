"""Exactly one active feed per database: the lease rules, and real `run_feed`
processes: a second one waits as a standby naming the active one, stopping it
leaves the active feed's markets alone, and when the active feed is killed the
standby takes over by itself."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from pipeline.tests.feed_fixtures import feed_redis, loop_thread, make_simulator, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_it_gives_the_lease_to_one_holder_until_its_heartbeat_expires(db):
    from pipeline.selectors import feed_lease_get
    from pipeline.services import feed_lease_acquire, feed_lease_release

    t0 = timezone.now()
    assert feed_lease_acquire(holder="a", lease_seconds=20, now=t0)
    assert not feed_lease_acquire(holder="b", lease_seconds=20, now=t0 + dt.timedelta(seconds=5))
    assert feed_lease_acquire(holder="a", lease_seconds=20, now=t0 + dt.timedelta(seconds=10))  # renewed
    assert not feed_lease_acquire(holder="b", lease_seconds=20, now=t0 + dt.timedelta(seconds=29))
    assert feed_lease_acquire(holder="b", lease_seconds=20, now=t0 + dt.timedelta(seconds=31))
    assert not feed_lease_acquire(holder="a", lease_seconds=20, now=t0 + dt.timedelta(seconds=32))
    assert feed_lease_get().holder == "b"
    assert not feed_lease_release(holder="a")
    assert feed_lease_release(holder="b")
    assert feed_lease_acquire(holder="a", lease_seconds=20, now=timezone.now())


def test_it_takes_over_within_30_seconds_with_the_default_lease(settings):
    from pipeline.feeds.standby import FeedLeaseKeeper

    keeper = FeedLeaseKeeper(make_runner=lambda: None, lease_seconds=settings.FEED_LEASE_SECONDS)
    # Worst case: the active feed dies right after renewing; the standby notices at
    # its next poll after the lease expired.
    assert settings.FEED_LEASE_SECONDS + keeper.interval <= 30


class _Feed:
    def __init__(self, name: str, env: dict[str, str]):
        self.log = ROOT / "var" / f"test-feed-{name}-{os.getpid()}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "run_feed", "--supervise-interval", "0.3"],
                                     cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, text=True)

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def _holder() -> str:
    from pipeline.selectors import feed_lease_get

    lease = feed_lease_get()
    return lease.holder if lease else ""


def _readiness(market: str) -> str:
    from pipeline.selectors import readiness_get

    return str(readiness_get(market=market)[0])


@pytest.mark.slow
def test_a_second_feed_waits_as_standby_and_takes_over_when_the_active_one_dies(
        settings, transactional_db, instruments, feed_redis, loop_thread):
    from conftest import child_database_url

    sim = loop_thread.call(make_simulator(trades_per_second=5).start())
    env = dict(os.environ, DATABASE_URL=child_database_url(), BINANCE_WS_URL=sim.ws_url,
               BINANCE_REST_URL=sim.rest_url, FEED_SYMBOLS="BTCUSDT,ETHUSDT", READINESS_WINDOW_MINUTES="3",
               FEED_STALE_SECONDS="2", FEED_LEASE_SECONDS="3")
    settings.FEED_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
    feeds: list[_Feed] = []
    try:
        active = _Feed("a", env)
        feeds.append(active)
        wait_until(lambda: active.proc.poll() is not None or _readiness("crypto") == "ACTIVE", timeout=30)
        assert active.proc.poll() is None, active.text()
        assert f":{active.proc.pid}:" in _holder()

        standby = _Feed("b", env)
        feeds.append(standby)
        wait_until(lambda: "standby: feed" in standby.text(), timeout=20)
        assert f":{active.proc.pid}:" in standby.text()  # it names the active feed
        time.sleep(2)  # a few lease periods: it must not start streaming meanwhile
        assert f":{active.proc.pid}:" in _holder() and feed_redis.feed_process()["pid"] == active.proc.pid
        assert "connected" not in standby.text()
        assert standby.stop() == 0
        # A stopping standby leaves the active feed's markets and health alone.
        assert _readiness("crypto") == "ACTIVE"
        assert "Traceback" not in standby.text()
        wait_until(lambda: (feed_redis.feed_process() or {}).get("pid") == active.proc.pid, timeout=3)

        standby = _Feed("c", env)
        feeds.append(standby)
        wait_until(lambda: "standby: feed" in standby.text(), timeout=20)
        active.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: f":{standby.proc.pid}:" in _holder(), timeout=30, interval=0.1)
        wait_until(lambda: (feed_redis.feed_process() or {}).get("pid") == standby.proc.pid, timeout=10)
        took_over = time.monotonic() - killed_at
        assert took_over < 30
        wait_until(lambda: all(feed_redis.feed_symbol_health().get(s, {}).get("healthy")
                               for s in ("BTCUSDT", "ETHUSDT")), timeout=20)
        assert "is the active feed" in standby.text()
        assert standby.stop() == 0, standby.text()
        assert "Traceback" not in standby.text()
        assert _readiness("crypto") == "STOPPED"
        assert _holder() == "" or f":{standby.proc.pid}:" in _holder()
    finally:
        for feed in feeds:
            feed.stop(signal.SIGKILL, timeout=5)
            feed.log.unlink(missing_ok=True)
        loop_thread.call(sim.stop())
