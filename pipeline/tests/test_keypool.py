"""API key pool (rotation, per-key budget, Retry-After) and the REST client against
the simulator's 429s."""
from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.feeds.keypool import ApiKeyPool, KeysExhausted, key_label
from pipeline.feeds.rest import BinanceRestClient, RateLimited, RestError
from pipeline.tests.feed_fixtures import simulator  # noqa: F401

KEY_A = "aaaaAAAAaaaaAAAAaaaa1111"
KEY_B = "bbbbBBBBbbbbBBBBbbbb2222"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_it_rotates_keys():
    pool = ApiKeyPool([KEY_A, KEY_B, KEY_A, " "], rate_per_min=100, clock=FakeClock())
    assert len(pool) == 2
    assert [pool.try_acquire() for _ in range(4)] == [KEY_A, KEY_B, KEY_A, KEY_B]
    assert [u["requests"] for u in pool.usage()] == [2, 2]


def test_it_keeps_each_key_under_its_rate():
    clock = FakeClock()
    pool = ApiKeyPool([KEY_A], rate_per_min=2, clock=clock)
    pool.try_acquire()
    clock.now += 10
    pool.try_acquire()
    with pytest.raises(KeysExhausted) as exhausted:
        pool.try_acquire()
    assert exhausted.value.retry_in == pytest.approx(50.0)
    clock.now += 50
    assert pool.try_acquire() == KEY_A


def test_it_benches_a_key_for_its_retry_after():
    clock = FakeClock()
    pool = ApiKeyPool([KEY_A, KEY_B], rate_per_min=1000, clock=clock)
    pool.penalize(KEY_A, 30)
    assert {pool.try_acquire() for _ in range(3)} == {KEY_B}
    clock.now += 29.9
    assert pool.try_acquire() == KEY_B
    clock.now += 0.2
    assert pool.try_acquire() == KEY_A
    usage = {u["key"]: u for u in pool.usage()}
    assert usage[key_label(KEY_A)]["rate_limited"] == 1


def test_it_waits_for_a_key_only_as_long_as_allowed():
    clock = FakeClock()
    pool = ApiKeyPool([KEY_A], rate_per_min=1000, clock=clock)
    pool.penalize(KEY_A, 5)
    with pytest.raises(KeysExhausted):
        pool.acquire(max_wait=4, sleep=clock.sleep)
    assert pool.acquire(max_wait=6, sleep=clock.sleep) == KEY_A
    assert clock.now == pytest.approx(1005.0)


def test_it_works_without_keys_and_never_prints_them():
    pool = ApiKeyPool([], rate_per_min=10)
    assert pool.try_acquire() is None
    assert pool.usage()[0]["key"] == "anonymous"
    labels = [u["key"] for u in ApiKeyPool([KEY_A]).usage()]
    assert KEY_A not in str(labels) and labels == ["aaaa…1111"]


async def test_it_honours_429_retry_after_by_switching_keys(simulator):
    pool = ApiKeyPool([KEY_A, KEY_B], rate_per_min=100)
    client = BinanceRestClient(simulator.rest_url, pool, max_wait=0)
    simulator.rate_limit(1, retry_after=30)
    klines = await asyncio.to_thread(client.klines, "BTCUSDT", "1m", None, None, 3)
    assert len(klines) == 3 and klines[-1].symbol == "BTCUSDT" and not klines[-1].closed
    assert dict(simulator.rest_requests_by_key) == {KEY_A: 1, KEY_B: 1}
    usage = {u["key"]: u for u in pool.usage()}
    assert usage[key_label(KEY_A)]["rate_limited"] == 1
    assert usage[key_label(KEY_A)]["available_in"] > 29
    # Key A stays benched: the next requests all go to B.
    await asyncio.to_thread(client.klines, "BTCUSDT", "1m", None, None, 1)
    await asyncio.to_thread(client.klines, "BTCUSDT", "1m", None, None, 1)
    assert simulator.rest_requests_by_key[KEY_A] == 1 and simulator.rest_requests_by_key[KEY_B] == 3


async def test_it_waits_out_retry_after_with_a_single_key(simulator):
    client = BinanceRestClient(simulator.rest_url, ApiKeyPool([KEY_A]), max_wait=5)
    simulator.rate_limit(1, retry_after=1)
    started = time.monotonic()
    klines = await asyncio.to_thread(client.klines, "ETHUSDT", "1m", None, None, 2)
    assert len(klines) == 2
    assert time.monotonic() - started >= 1.0
    assert simulator.counters["rest_rate_limited"] == 1 and simulator.rest_requests_by_key[KEY_A] == 2


async def test_it_gives_up_when_rate_limited_beyond_its_patience(simulator):
    client = BinanceRestClient(simulator.rest_url, ApiKeyPool([]), max_wait=0.5)
    simulator.rate_limit(5, retry_after=20)
    with pytest.raises(RateLimited) as limited:
        await asyncio.to_thread(client.klines, "ETHUSDT", "1m", None, None, 2)
    assert limited.value.retry_after > 19
    # It did not hammer the exchange while benched.
    assert simulator.counters["rest_requests"] == 1


async def test_it_reports_exchange_errors_clearly(simulator):
    client = BinanceRestClient(simulator.rest_url)
    with pytest.raises(RestError, match="HTTP 400: Invalid symbol") as error:
        await asyncio.to_thread(client.klines, "NOPE", "1m", None, None, 2)
    assert error.value.code == -1121


async def test_it_pages_a_long_range():
    from pipeline.tests.feed_fixtures import make_simulator

    async with make_simulator(trades_per_second=0.2) as sim:
        client = BinanceRestClient(sim.rest_url)
        klines, pages, start, end = await _page(client)
    assert pages == [1000, 500]
    assert [k.open_ms for k in klines] == list(range(start, end, 60_000))
    assert all(k.closed for k in klines)


async def _page(client):
    now = int(time.time() * 1000)
    end = now - now % 60_000 - 1
    start = end + 1 - 1500 * 60_000
    pages = []
    klines = await asyncio.to_thread(client.klines_range, "USDCOP", "1m", start, end, pages.append)
    return klines, pages, start, end
