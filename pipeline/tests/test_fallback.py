"""REST polling fallback: takes over a stalled stream during its session, hands
back when the stream is healthy, never polls a closed market."""
from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from pipeline.feeds.fallback import fallback_poll, fallback_poll_locked
from pipeline.feeds.manager import ConnectionManager
from pipeline.feeds.rest import BinanceRestClient
from pipeline.tests.feed_fixtures import feed_redis, loop_thread, make_simulator, wait_until  # noqa: F401

UTC = dt.timezone.utc


@pytest.fixture
def sim(loop_thread):
    simulator = loop_thread.call(make_simulator().start())
    yield simulator
    loop_thread.call(simulator.stop())


def _candles(symbol: str):
    from pipeline.models import Candle

    return list(Candle.objects.filter(instrument__symbol=symbol, timeframe="1m").order_by("open_time"))


class _StreamingFeed:
    """The part of the feed process the fallback depends on: a manager streaming
    symbols, publishing its per-symbol health to Redis like run_feed does."""

    def __init__(self, loop_thread, sim, symbols, stale_seconds):
        self.loop_thread = loop_thread
        self.manager = ConnectionManager(ws_url=sim.ws_url, on_trade=lambda t: None, on_kline=lambda k: None,
                                         stale_seconds=stale_seconds, backoff_base=0.05, backoff_cap=0.2,
                                         rng=random.Random(1))
        self.symbols = symbols
        self._publisher = None

    async def _publish_forever(self):
        from pipeline.feeds.health_store import feed_health_publish

        while True:
            feed_health_publish(symbols=self.manager.symbol_health(),
                                connections=[c.snapshot() for c in self.manager.connections()], process={})
            await asyncio.sleep(0.05)

    async def _start(self):
        await self.manager.start()
        await self.manager.subscribe(s for sym in self.symbols for s in (f"{sym.lower()}@trade",
                                                                          f"{sym.lower()}@kline_1m"))
        self._publisher = asyncio.create_task(self._publish_forever())

    async def _stop(self):
        self._publisher.cancel()
        await self.manager.stop()

    def __enter__(self):
        self.loop_thread.call(self._start())
        return self

    def __exit__(self, *exc):
        self.loop_thread.call(self._stop())


def test_it_polls_rest_while_the_stream_stalls_then_hands_back(settings, instruments, feed_redis, loop_thread, sim):
    settings.FEED_SYMBOLS = ["BTCUSDT"]
    settings.FEED_STALE_SECONDS = 0.4
    client = BinanceRestClient(sim.rest_url)
    with _StreamingFeed(loop_thread, sim, ["BTCUSDT"], stale_seconds=0.4):
        wait_until(lambda: feed_redis.feed_symbol_health().get("BTCUSDT", {}).get("healthy"))
        assert fallback_poll(client=client) == {"BTCUSDT": "stream"}
        assert sim.counters["rest_requests"] == 0 and _candles("BTCUSDT") == []

        sim.stall(1.5)
        wait_until(lambda: not feed_redis.feed_symbol_health()["BTCUSDT"]["healthy"], timeout=2)
        assert fallback_poll(client=client) == {"BTCUSDT": "polling"}
        assert sim.counters["rest_requests"] == 1
        state = feed_redis.fallback_state_get()["BTCUSDT"]
        assert state["polls"] == 1
        assert state["reason"].startswith(("stale", "down (connection"))
        # The REST klines reached the candles: the minute being traded is stored.
        now_ms = int(sim.clock() * 1000)
        candles = _candles("BTCUSDT")
        assert candles and int(candles[-1].open_time.timestamp() * 1000) == now_ms - now_ms % 60_000
        assert candles[-1].trades > 0
        assert fallback_poll(client=client) == {"BTCUSDT": "polling"}
        assert feed_redis.fallback_state_get()["BTCUSDT"]["polls"] == 2

        wait_until(lambda: feed_redis.feed_symbol_health()["BTCUSDT"]["healthy"], timeout=4)
        assert fallback_poll(client=client) == {"BTCUSDT": "stream"}
        assert feed_redis.fallback_state_get() == {}
        assert sim.counters["rest_requests"] == 2  # handed back: no more polling


def test_it_polls_when_no_feed_process_is_streaming(settings, instruments, feed_redis, sim):
    settings.FEED_SYMBOLS = ["ETHUSDT"]
    client = BinanceRestClient(sim.rest_url)
    assert fallback_poll(client=client) == {"ETHUSDT": "polling"}
    state = feed_redis.fallback_state_get()["ETHUSDT"]
    assert "no feed process" in state["reason"]
    # First poll of an outage looks back a few minutes.
    assert len(_candles("ETHUSDT")) >= 5


def test_it_neither_polls_nor_streams_a_closed_market(settings, instruments, feed_redis, sim):
    settings.FEED_SYMBOLS = ["USDCOP"]
    client = BinanceRestClient(sim.rest_url)
    saturday = dt.datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
    christmas = dt.datetime(2025, 12, 25, 15, 0, tzinfo=UTC)     # Thursday, Colombian holiday
    before_open = dt.datetime(2025, 3, 10, 12, 59, tzinfo=UTC)   # Monday 07:59 Bogota
    for moment in (saturday, christmas, before_open):
        assert fallback_poll(now=moment, client=client) == {"USDCOP": "closed"}
    assert sim.counters["rest_requests"] == 0
    open_monday = dt.datetime(2025, 3, 10, 13, 30, tzinfo=UTC)   # 08:30 Bogota
    assert fallback_poll(now=open_monday, client=client) == {"USDCOP": "polling"}
    assert sim.counters["rest_requests"] == 1
    # Polling state is dropped when the session ends.
    assert fallback_poll(now=saturday, client=client) == {"USDCOP": "closed"}
    assert feed_redis.fallback_state_get() == {}


def test_it_polls_once_at_a_time(settings, instruments, feed_redis, sim):
    settings.FEED_SYMBOLS = ["BTCUSDT"]
    settings.BINANCE_REST_URL = sim.rest_url
    token = feed_redis.fallback_lock(ttl=5)
    assert token
    assert fallback_poll_locked() == {"skipped": "another fallback poll is running"}
    feed_redis.fallback_unlock(token)
    from pipeline.tasks import feed_fallback_poll

    assert feed_fallback_poll.apply().get() == {"BTCUSDT": "polling"}
    assert sim.counters["rest_requests"] == 1
