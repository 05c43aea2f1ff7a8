"""Fixtures for the feed tests: an in-process exchange simulator on a loopback port,
an accelerated market clock, and an event loop in a thread for tests that mix the
asyncio feed with Django's synchronous ORM. Import the fixtures you use."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest
import pytest_asyncio

from pipeline.feeds.simulator import ExchangeSimulator, RandomWalk

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "USDCOP"]


class MarketClock:
    """Market time that runs `speed` times faster than real time from `start`.

    Lets a test live through several exchange minutes (closed candles, a minute
    boundary inside an outage) in a couple of real seconds. The simulator, the REST
    client and the feed runner all read market time from the same clock.
    """

    def __init__(self, start: float, speed: float):
        self.start, self.speed, self._real0 = start, speed, time.time()

    def __call__(self) -> float:
        return self.start + (time.time() - self._real0) * self.speed

    def ms(self) -> int:
        return int(self() * 1000)

    def real_seconds_until(self, market_ts: float) -> float:
        return max(0.0, (market_ts - self()) / self.speed)


def minute_clock(*, speed: float, seconds_before_boundary: float) -> MarketClock:
    """A clock starting `seconds_before_boundary` market seconds before a minute boundary."""
    now = time.time()
    boundary = now - now % 60 + 60
    return MarketClock(boundary - seconds_before_boundary, speed)


def make_simulator(**overrides: Any) -> ExchangeSimulator:
    options: dict[str, Any] = dict(tick_interval=0.02, kline_push_interval=0.1, ping_interval=None)
    options.update(overrides)
    source = options.pop("source", None) or RandomWalk(
        options.pop("symbols", SYMBOLS), seed=options.pop("seed", 7),
        trades_per_second=options.pop("trades_per_second", 20.0))
    return ExchangeSimulator(source, **options)


@pytest_asyncio.fixture
async def simulator():
    sim = await make_simulator().start()
    yield sim
    await sim.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class LoopThread:
    """An asyncio loop in a daemon thread; `call(coro)` runs a coroutine there and
    returns its result to the (synchronous, ORM-using) test thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def call(self, coro, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, func: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(func)

    def close(self) -> None:
        async def _cancel_rest():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(_cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def feed_redis():
    """Clean feed keys (health, fallback state) of this test run's prefix."""
    from pipeline.feeds import health_store

    def clean():
        client = health_store._redis()
        keys = list(client.scan_iter(health_store._key("*")))
        if keys:
            client.delete(*keys)

    clean()
    yield health_store
    clean()


class FeedProcess:
    """Stands in for a feed process in storage tests: it owns the trade dedupe state
    (as FeedRunner does); `restart()` is a new process starting from the database."""

    def __init__(self):
        from pipeline.services import TradeDedupe

        self.dedupe = TradeDedupe()

    def ingest(self, trades) -> dict:
        from pipeline.services import trades_ingest

        return trades_ingest(trades=trades, dedupe=self.dedupe)

    def restart(self) -> None:
        from pipeline.services import TradeDedupe

        self.dedupe = TradeDedupe()


@pytest.fixture
def feed_process():
    return FeedProcess()
