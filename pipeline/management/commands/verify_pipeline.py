"""`manage.py verify_pipeline`: an end-to-end self-test for operators and deploy checks.

Runs each step in order and stops at the first failure, exiting non-zero with the
step's name and what to fix. It reads and round-trips, but writes nothing a user
could see: no signal is created (the channel-layer step uses a private group of
its own, never the signals group).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from pipeline.feeds import health_store
from pipeline.health_facts import SNAPSHOT_MAX_AGE_SECONDS, database_check, redis_check
from pipeline.selectors import health_snapshot_latest, market_data_health
from signals_project.celery import app as celery_app

STEPS = ("database", "redis", "channel_layer", "feed", "worker", "beat")


class StepFailed(Exception):
    """A step's check did not hold; the message says what to fix."""


class Command(BaseCommand):
    help = ("End-to-end self-test: " + ", ".join(STEPS) + ". Exits 1 naming the first failing step; "
            "creates no signal.")

    def add_arguments(self, parser):
        parser.add_argument("--skip", action="append", default=[], choices=STEPS, metavar="STEP",
                            help=f"skip a step (repeatable): one of {', '.join(STEPS)}")
        parser.add_argument("--timeout", type=float, default=5.0,
                            help="seconds each network step may take (default 5)")

    def handle(self, *args, **opts):
        if opts["timeout"] <= 0:
            raise CommandError("--timeout must be positive")
        self.timeout = opts["timeout"]
        checks: dict[str, Callable[[], str]] = {
            "database": self._database, "redis": self._redis, "channel_layer": self._channel_layer,
            "feed": self._feed, "worker": self._worker, "beat": self._beat,
        }
        for step in STEPS:
            if step in opts["skip"]:
                self.stdout.write(f"{step:<14} skipped")
                continue
            started = time.perf_counter()
            try:
                detail = checks[step]()
            except StepFailed as exc:
                self.stdout.write(self.style.ERROR(f"{step:<14} FAIL  {exc}"))
                raise CommandError(f"verify_pipeline failed at step '{step}': {exc}") from None
            except DatabaseError as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.stdout.write(self.style.ERROR(f"{step:<14} FAIL  {message}"))
                raise CommandError(f"verify_pipeline failed at step '{step}': database error: {message} "
                                   "(is `manage.py migrate` done?)") from None
            elapsed = (time.perf_counter() - started) * 1000
            self.stdout.write(self.style.SUCCESS(f"{step:<14} ok    {detail} ({elapsed:.0f} ms)"))
        self.stdout.write(self.style.SUCCESS("pipeline verified"))

    def _database(self) -> str:
        error = database_check()
        if error:
            raise StepFailed(f"{error}; check DATABASE_URL and that the server runs")
        return "SELECT 1 answered"

    def _redis(self) -> str:
        error = redis_check()
        if error:
            raise StepFailed(f"{error}; check REDIS_URL and that the server runs")
        return "PING answered"

    def _channel_layer(self) -> str:
        layer = get_channel_layer()
        if layer is None:
            raise StepFailed("no channel layer configured (CHANNEL_LAYERS)")
        group = f"verify-{uuid.uuid4().hex}"
        token = uuid.uuid4().hex

        async def round_trip() -> dict:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            try:
                await layer.group_send(group, {"type": "verify.ping", "token": token})
                return await layer.receive(channel)
            finally:
                await layer.group_discard(group, channel)

        try:
            message = asyncio.run(asyncio.wait_for(round_trip(), self.timeout))
        except (asyncio.TimeoutError, TimeoutError):
            raise StepFailed(f"a message to a private group did not come back within {self.timeout:g}s") from None
        except Exception as exc:  # noqa: BLE001 - any layer failure is this step's failure
            raise StepFailed(f"{type(exc).__name__}: {exc}") from None
        if message.get("token") != token:
            raise StepFailed("a different message came back on the private group")
        return f"round trip on private group {group[:15]}…"

    def _feed(self) -> str:
        process = health_store.feed_process()
        data = market_data_health(now=timezone.now())
        open_markets = {m: info for m, info in data["markets"].items() if info["open"]}
        if process is None and open_markets:
            raise StepFailed("no feed process has published its health recently; start `manage.py run_feed`")
        stale = [f"{m}: {', '.join(s for s, v in info['symbols'].items() if not v['fresh'])}"
                 for m, info in sorted(open_markets.items()) if not all(v["fresh"] for v in info["symbols"].values())]
        if stale:
            raise StepFailed(f"stale data (older than {data['max_age_seconds']}s) in open markets: "
                             + "; ".join(stale))
        if not open_markets:
            return "no market open now: nothing to be fresh"
        return "fresh data in " + ", ".join(f"{m} ({len(i['symbols'])} symbols)" for m, i in open_markets.items())

    def _worker(self) -> str:
        try:
            replies = celery_app.control.ping(timeout=min(self.timeout, 3.0))
        except Exception as exc:  # noqa: BLE001 - broker unreachable
            raise StepFailed(f"cannot reach the Celery broker ({type(exc).__name__}: {exc}); "
                             "check CELERY_BROKER_URL") from None
        if not replies:
            raise StepFailed("no Celery worker answered a ping; start `celery -A signals_project worker`")
        return f"{len(replies)} worker(s) answered: " + ", ".join(sorted(n for r in replies for n in r))

    def _beat(self) -> str:
        snapshot = health_snapshot_latest()
        if snapshot is None:
            raise StepFailed("no health check was ever stored; start `celery -A signals_project beat` "
                             "(it schedules one every 30 s) and a worker")
        age = (timezone.now() - snapshot.created_at).total_seconds()
        if age > SNAPSHOT_MAX_AGE_SECONDS:
            raise StepFailed(f"the last health check is {age:.0f}s old (beat schedules one every 30 s): "
                             "is `celery -A signals_project beat` running?")
        return f"health checked {age:.0f}s ago (score {snapshot.score}, {snapshot.status})"

