"""Exactly one active feed per database, with hot standbys.

Why: two feeds streaming the same symbols double the exchange traffic, and when
one of them stops it marks the markets STOPPED under the other. Every `run_feed`
competes for the FeedLease row (pipeline.services.feed_lease_acquire). The holder
streams and renews its heartbeat every third of the lease; the others wait as
standbys, say which feed is active, and take the lease over once its heartbeat is
older than the lease (FEED_LEASE_SECONDS, 20 s by default: a take-over within
about 27 s of the active feed dying). A feed that finds its lease taken (it hung
longer than the lease) stops streaming without touching readiness and goes back
to standby. A clean shutdown releases the lease, so a standby takes over at once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from django.db import close_old_connections, connections
from django.utils import timezone

from pipeline.selectors import feed_lease_get
from pipeline.services import feed_lease_acquire, feed_lease_release

from .runner import FeedRunner

logger = logging.getLogger("pipeline.feeds.runner")

# A standby repeats who is active this often (seconds), so the log always says it.
STANDBY_REPORT_SECONDS = 60.0


def feed_holder_name() -> str:
    """How this process names itself in the lease: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class FeedLeaseKeeper:
    """Runs feed runners only while holding the lease (see module docstring)."""

    def __init__(self, *, make_runner: Callable[[], FeedRunner], lease_seconds: float, holder: str | None = None):
        self.make_runner = make_runner
        self.lease_seconds = lease_seconds
        self.holder = holder or feed_holder_name()
        self.interval = lease_seconds / 3
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-lease")

    async def _in_db(self, func: Callable[..., Any], **kwargs: Any) -> Any:
        def call():
            close_old_connections()
            return func(**kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._db, call)

    async def _acquire(self) -> bool | None:
        """True/False, or None when the database could not be asked."""
        try:
            return await self._in_db(feed_lease_acquire, holder=self.holder, lease_seconds=self.lease_seconds)
        except Exception as exc:  # noqa: BLE001 - database unreachable: unknown, try again
            logger.warning("feed lease: database unavailable (%s)", exc)
            return None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if not await self._wait_for_lease(stop):
                    return
                await self._run_active(stop)
        finally:
            if stop.is_set():
                try:
                    await self._in_db(feed_lease_release, holder=self.holder)
                except Exception:  # noqa: BLE001 - the lease expires by itself
                    logger.warning("feed lease: could not release at shutdown", exc_info=True)
            await self._in_db(connections.close_all)
            self._db.shutdown(wait=True)

    async def _wait_for_lease(self, stop: asyncio.Event) -> bool:
        reported = 0.0
        while not stop.is_set():
            if await self._acquire():
                logger.info("feed lease: %s is the active feed", self.holder)
                return True
            if time.monotonic() - reported >= STANDBY_REPORT_SECONDS:
                reported = time.monotonic()
                logger.warning("standby: %s", await self._describe_active())
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
        return False

    async def _describe_active(self) -> str:
        try:
            lease = await self._in_db(feed_lease_get)
        except Exception as exc:  # noqa: BLE001
            return f"cannot read the feed lease ({exc}); retrying"
        if lease is None:
            return "no feed lease yet; retrying"
        age = (timezone.now() - lease.heartbeat_at).total_seconds()
        return (f"feed {lease.holder} is active (since {lease.acquired_at.isoformat()}, heartbeat {age:.0f}s "
                f"ago); this feed ({self.holder}) takes over if that heartbeat stops for {self.lease_seconds:g}s")

    async def _run_active(self, stop: asyncio.Event) -> None:
        runner = self.make_runner()
        run_stop = asyncio.Event()
        lost = False

        async def heartbeat() -> None:
            nonlocal lost
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.interval)
                    break
                except asyncio.TimeoutError:
                    pass
                if await self._acquire() is False:
                    lost = True
                    logger.error("feed lease: lost (%s); stopping streaming and going back to standby",
                                 await self._describe_active())
                    # Another feed is active: leave readiness to it.
                    runner.keep_readiness_on_stop = True
                    break
            run_stop.set()

        beat = asyncio.create_task(heartbeat(), name="feed-lease-heartbeat")
        try:
            await runner.run(run_stop)
        finally:
            run_stop.set()
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        if lost:
            logger.info("feed lease: %s is standby again", self.holder)
