"""Delivery benchmark: one signal reaches 1,000 subscribed chat channels.

Why: the integrations issue promises that 1,000 subscribed channels receive one
signal within 30 s on this machine. This measures exactly that path: `signal_create`
commits, the on-commit hook enqueues one fan-out task, a real Celery worker
records the event, selects the matching channels, creates one message per channel
and runs one delivery task each, POSTing to loopback fakes of the Telegram Bot API
and Discord's execute-webhook endpoint (integrations.fakes). Half the channels are
Telegram chats, half Discord webhooks; a further set of channels whose filters do
not match must receive nothing.

Figures: time from the commit to the last channel's message arriving, p50/p95/max
arrival, deliveries/s, and a baseline measured in the same run: the same number of
POSTs of the same bodies sent back to back by one plain urllib3 loop (no database,
no Celery), with the ratio engine / baseline.

A scratch database `bench_delivery` is created on DATABASE_URL's server and
migrated; the worker and this script use Redis database 13 as their broker so no
other worker picks up the tasks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/delivery.py --channels 1000 --pool threads --concurrency 16
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BROKER = "redis://127.0.0.1:6379/13"
TOKEN = "123456789:AABenchTokenBenchTokenBenchToken_1"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=1000, help="subscribed channels that must receive it")
    parser.add_argument("--non-matching", type=int, default=200, help="channels whose filters exclude it")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"],
                        help="Celery pool (deliveries wait on HTTP and the database: threads suit them)")
    parser.add_argument("--concurrency", type=int, default=16, help="Celery worker threads or processes")
    parser.add_argument("--database", default="bench_delivery", help="scratch database name")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    return parser.parse_args()


def _scratch_url(database: str) -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(base)
    if parsed.scheme not in ("postgres", "postgresql"):
        sys.exit("DATABASE_URL must point at PostgreSQL (postgres://...).")
    return parsed._replace(path="/postgres").geturl(), parsed._replace(path=f"/{database}").geturl()


def _recreate(maintenance_url: str, database: str) -> None:
    import psycopg

    if not database.replace("_", "").isalnum():
        sys.exit("--database: letters, digits and underscores only")
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')


def _start_worker(env: dict, pool: str, concurrency: int) -> subprocess.Popen:
    log = open(ROOT / "var" / "bench-delivery-worker.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "signals_project", "worker", "--pool", pool,
         "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _wait_worker(app, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1.0):
            return
    sys.exit("the Celery worker did not answer within 60 s (see var/bench-delivery-worker.log)")


def _channels(owner, *, count: int, non_matching: int, fake_url: str) -> None:
    from integrations.models import Channel

    rows = []
    for i in range(count):
        if i % 2:
            rows.append(Channel(owner=owner, kind="telegram", bot_token=TOKEN, chat_id=str(-1000000000000 - i),
                                sources=["bench"]))
        else:
            rows.append(Channel(owner=owner, kind="discord", url=f"{fake_url}/api/webhooks/{i}/bench-{i}",
                                sources=["bench"]))
    for i in range(non_matching):
        # Same source, but a market, confidence or event filter that excludes the signal.
        variant = [dict(markets=["forex"]), dict(min_confidence=95), dict(events=["signal.outcome"])][i % 3]
        rows.append(Channel(owner=owner, kind="telegram", bot_token=TOKEN, chat_id=str(-2000000000000 - i),
                            sources=["bench"], **variant))
    rows.append(Channel(owner=owner, kind="telegram", bot_token=TOKEN, chat_id="-1", sources=["warmup"]))
    Channel.objects.bulk_create(rows, batch_size=500)


def _baseline(fake, received_before: int, bodies: list) -> float:
    """Seconds for one plain urllib3 loop to POST the same requests back to back."""
    import urllib3

    pool = urllib3.PoolManager(maxsize=8)
    started = time.perf_counter()
    for path, body in bodies:
        pool.request("POST", fake.url + path, body=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    fake.wait_for(received_before + len(bodies), timeout=30)
    return elapsed


def main() -> None:
    args = _parse_args()
    maintenance_url, scratch_url = _scratch_url(args.database)
    _recreate(maintenance_url, args.database)

    from integrations.fakes import FakeRemotes

    fake = FakeRemotes(telegram_tokens={TOKEN}).start()
    env = dict(os.environ, DATABASE_URL=scratch_url, CELERY_BROKER_URL=BROKER, TELEGRAM_API_URL=fake.url,
               DISCORD_API_URL=f"{fake.url}/api", SITE_URL="https://signals.example", DB_CONN_MAX_AGE="60",
               DJANGO_SETTINGS_MODULE="signals_project.settings")
    os.environ.update(env)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from signals.services import demo_instruments_seed, signal_create
    from signals_project.celery import app

    call_command("migrate", verbosity=0)
    demo_instruments_seed()
    owner = get_user_model().objects.create_user("bench-owner")
    _channels(owner, count=args.channels, non_matching=args.non_matching, fake_url=fake.url)
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()  # leftovers of an interrupted run

    worker = _start_worker(env, args.pool, args.concurrency)
    try:
        _wait_worker(app)
        levels = dict(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90", take_profit="120")
        signal_create(**levels, confidence=80, source="warmup")  # loads the code paths once
        fake.wait_for(1, timeout=60)
        before = len(fake.received)

        committed = time.monotonic()
        signal = signal_create(**levels, confidence=80, source="bench").signal
        try:
            arrived = fake.wait_for(before + args.channels, timeout=args.timeout)[before:]
        except TimeoutError as exc:
            sys.exit(f"FAILED: {exc}")
        time.sleep(2.0)  # anything extra (a non-matching channel) would arrive now
        extra = len(fake.received) - before - args.channels
        latencies = sorted(r.at - committed for r in arrived)
        total = latencies[-1]
        bodies = [(r.path, r.body) for r in arrived]
        baseline = _baseline(fake, len(fake.received), bodies)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        fake.stop()

    kinds = {k: sum(1 for r in arrived if r.kind == k) for k in ("telegram", "discord")}
    print(json.dumps({"signal_id": signal.id, "channels": args.channels, "non_matching": args.non_matching,
                      "received": kinds, "unexpected_extra": extra, "pool": args.pool,
                      "concurrency": args.concurrency}))
    print(f"all {args.channels} channels received the signal {total:.2f} s after the commit "
          f"(target <= 30 s): p50 {statistics.median(latencies):.2f} s, "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s, "
          f"{args.channels / total:.0f} deliveries/s")
    print(f"baseline (one urllib3 loop, same {len(bodies)} POSTs, no DB/Celery): {baseline:.2f} s; "
          f"ratio engine/baseline {total / baseline:.1f}x")
    if extra:
        sys.exit(f"FAILED: {extra} message(s) reached channels whose filters exclude the signal")
    if total > 30:
        sys.exit("FAILED: slower than 30 s")


if __name__ == "__main__":
    main()
