"""Retries through a real Celery worker: a failed attempt schedules the next one as a
countdown task with backoff, and the same message (webhook-id) finally arrives."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis
from django.utils import timezone

from conftest import ROOT, child_database_url, make_signal
from integrations.fanout import event_fanout
from integrations.models import Delivery, Message
from integrations.services import channel_create
from integrations.tasks import message_deliver_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A broker database of its own, so no other worker on this Redis takes these tasks.
BROKER = "redis://127.0.0.1:6379/14"


@pytest.fixture
def worker(remotes):
    redis.Redis.from_url(BROKER).flushdb()
    env = dict(os.environ, DATABASE_URL=child_database_url(), CELERY_BROKER_URL=BROKER,
               WEBHOOK_ALLOW_PRIVATE="1", DELIVERY_RETRY_BASE_SECONDS="0.5", DB_CONN_MAX_AGE="0")
    log = open(ROOT / "var" / "integrations-test-worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "signals_project", "worker", "--pool", "threads", "--concurrency", "4",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_real_worker_retries_with_backoff_until_delivered(owner, remotes, instruments, worker):
    from signals_project.celery import app

    channel_create(owner=owner, kind="webhook", url=f"{remotes.url}/worker")
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    remotes.script("webhook", [503, 503])
    started = time.monotonic()
    with app.connection_for_write(BROKER) as connection:
        message_deliver_task.apply_async((message_id,), connection=connection)

    [received] = remotes.wait_for(1, timeout=60)
    elapsed = time.monotonic() - started
    assert received.headers["webhook-id"] == message_id
    assert [r.headers["webhook-id"] for r in remotes.failed] == [message_id, message_id]
    # The receiver answered before the worker wrote its attempt row: wait for it.
    deadline = time.monotonic() + 10
    while Message.objects.get(pk=message_id).status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Message.objects.get(pk=message_id).delivered_at <= timezone.now()
    attempts = list(Delivery.objects.filter(message_id=message_id).order_by("attempt"))
    assert [(a.attempt, a.status_code) for a in attempts[:3]] == [(1, 503), (2, 503), (3, 200)]
    # Waited at least the jittered backoff (0.5 s x 0.75, then 1 s x 0.75) between attempts.
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.375 and gaps[1] >= 0.75, gaps
    assert elapsed >= sum(gaps[:2])
