"""`verify_pipeline`: each step against the real services, a failure names its step
and what to fix, and no run creates a signal. The passing run uses a real Celery
worker and beat (beat's first health check proves both)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from pipeline.tests.feed_fixtures import feed_redis, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_it_lists_its_steps_in_help():
    result = subprocess.run([sys.executable, "manage.py", "verify_pipeline", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for step in ("database", "redis", "channel_layer", "feed", "worker", "beat", "--skip", "--timeout"):
        assert step in result.stdout


def test_it_refuses_a_bad_timeout(db):
    with pytest.raises(CommandError, match="--timeout must be positive"):
        call_command("verify_pipeline", "--timeout", "0")


def test_it_fails_at_the_redis_step_when_redis_is_unreachable(db, settings):
    from conftest import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    out = StringIO()
    with pytest.raises(CommandError, match="step 'redis'.*REDIS_URL"):
        call_command("verify_pipeline", stdout=out)
    assert "database       ok" in out.getvalue()


def test_it_fails_at_the_feed_step_when_an_open_market_has_no_feed(db, instruments, feed_redis):
    from signals.models import Signal

    out = StringIO()
    with pytest.raises(CommandError, match="step 'feed'.*run_feed"):
        call_command("verify_pipeline", stdout=out)
    text = out.getvalue()
    assert "channel_layer  ok" in text and "feed           FAIL" in text
    assert Signal.objects.count() == 0


def test_it_fails_at_the_feed_step_naming_stale_symbols(db, instruments, feed_redis):
    feed_redis.feed_health_publish(symbols={}, connections=[], process={"started_at": time.time()})
    with pytest.raises(CommandError, match="step 'feed'.*stale data.*crypto: BTCUSDT"):
        call_command("verify_pipeline", "--skip", "worker", "--skip", "beat")


@pytest.mark.slow
def test_it_passes_end_to_end_with_a_real_worker_and_beat(transactional_db, feed_redis):
    from conftest import child_database_url
    from signals.models import Signal

    # A broker database of its own: a ping must be answered by this test's worker.
    env = dict(os.environ, DATABASE_URL=child_database_url(), CELERY_BROKER_URL="redis://127.0.0.1:6379/13")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "signals_project", "worker", "--pool=solo",
                               "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "signals_project", "beat", "--loglevel=WARNING",
                             "--schedule", "/dev/null"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        from pipeline.models import HealthSnapshot

        wait_until(lambda: HealthSnapshot.objects.exists(), timeout=60, interval=0.5)
        result = subprocess.run([sys.executable, "manage.py", "verify_pipeline"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        for proc in (beat, worker):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("database", "redis", "channel_layer", "feed", "worker", "beat"):
        assert f"{step:<14} ok" in result.stdout
    assert "pipeline verified" in result.stdout
    assert Signal.objects.count() == 0
    # The worker's task runs reached the shared counters that every /metrics exports.
    from pipeline.shared_counters import shared_counter_totals, shared_totals

    runs = shared_counter_totals("celery_task_runs_total")
    assert runs.get((("task", "pipeline.tasks.health_record"),), 0) >= 1
    seconds = shared_totals(["celery_task_seconds_count"])["celery_task_seconds_count"]
    assert seconds.get((("task", "pipeline.tasks.health_record"),), 0) >= 1


def test_pipeline_status_shows_health_components_lease_and_the_last_24h(db, instruments, feed_redis):
    from django.utils import timezone

    from conftest import make_signal
    from pipeline.services import feed_lease_acquire

    make_signal(source="ema_cross")
    feed_lease_acquire(holder="host:123:abcdef", lease_seconds=20, now=timezone.now())
    out = StringIO()
    call_command("pipeline_status", stdout=out)
    text = out.getvalue()
    assert "Health: down" in text and "no recent stored check" in text
    rows = {line.split()[0]: line.split(None, 3) for line in text.splitlines() if line.strip()}
    assert rows["pipeline"][1:3] == ["0/30", "down"] and "no feed process is publishing" in rows["pipeline"][3]
    assert rows["strategies"][1:] == ["10/10", "ok", "no strategies configured"]
    assert "Feed lease: host:123:abcdef since" in text
    assert "Last 24 h: 1 signals (ema_cross 1)" in text
    out = StringIO()
    call_command("pipeline_status", "--json", stdout=out)
    import json

    status = json.loads(out.getvalue())
    assert status["health"]["components"]["pipeline"]["points"] == 0
    assert status["feed_lease"]["holder"] == "host:123:abcdef"


def test_commands_say_what_to_fix_when_the_database_is_unreachable():
    from conftest import free_port

    env = dict(os.environ, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere")
    for command, expected in (("pipeline_status", "database unreachable"),
                              ("verify_pipeline", "failed at step 'database'")):
        result = subprocess.run([sys.executable, "manage.py", command], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert expected in result.stderr and "DATABASE_URL" in result.stderr
        assert "Traceback" not in result.stderr
