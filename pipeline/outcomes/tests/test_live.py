"""Outcomes decided inside the real feed process (FeedRunner) streaming from the
exchange simulator over loopback: the exact trade while streaming, 1m candles for
an outage, and the same decision across a restart of the feed. The simulator's tape
is deterministic, so every expectation is read from it independently."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.feeds.simulator.market import units_to_str
from pipeline.outcomes.book import at_of
from pipeline.outcomes.engine import apply_candle, apply_trade, levels_build, state_new
from pipeline.outcomes.records import outcome_record
from pipeline.tests.feed_fixtures import MarketClock, feed_redis, loop_thread, make_simulator, wait_until  # noqa: F401
from signals.models import SignalOutcome
from signals.services import signal_create

SYMBOL = "BTCUSDT"
MINUTE = 60_000
START = 1_750_000_005.0      # fixed market time: the same tape on every run



async def _event() -> asyncio.Event:
    return asyncio.Event()


class Feed:
    """A simulator and a FeedRunner on one market clock, started and stopped by the test."""

    def __init__(self, loop_thread, clock, sim=None):
        self.loop_thread, self.clock = loop_thread, clock
        self.sim = sim or loop_thread.call(make_simulator(clock=clock, symbols=[SYMBOL], trades_per_second=10,
                                                          kline_push_interval=0.05).start())

    def start(self) -> "Feed":
        self.runner = FeedRunner(ws_url=self.sim.ws_url, rest=BinanceRestClient(self.sim.rest_url, clock=self.clock),
                                 clock=self.clock, stale_seconds=1.0, batch_interval=0.05, publish_interval=0.2,
                                 supervise_interval=0.2, backoff_base=0.05, backoff_cap=0.1)
        self.runner.outcomes.poll_interval = 0.05
        self.stop_event = self.loop_thread.call(_event())
        self.future = asyncio.run_coroutine_threadsafe(self.runner.run(self.stop_event), self.loop_thread.loop)
        wait_until(lambda: self.runner.outcomes.is_live(SYMBOL)
                   and self.runner.outcomes.book.book(SYMBOL).last_ms is not None, timeout=20)
        return self

    def stop(self) -> None:
        self.loop_thread.call_soon(self.stop_event.set)
        self.future.result(20)

    def tape(self, after_ms: int, upto_ms: int) -> list[tuple[int, Decimal]]:
        exp = self.sim.source.profile(SYMBOL).price_exp
        return [(t.ts_ms, Decimal(units_to_str(t.price, exp)))
                for t in self.sim.tape.trades_between(SYMBOL, after_ms, upto_ms)]

    def minute(self, open_ms: int) -> tuple[Decimal, Decimal]:
        """(high, low) of the exchange's 1m kline."""
        exp = self.sim.source.profile(SYMBOL).price_exp
        k = self.sim.tape.kline(SYMBOL, open_ms=open_ms, interval_ms=MINUTE, upto_ms=open_ms + MINUTE - 1)
        return Decimal(units_to_str(k.high, exp)), Decimal(units_to_str(k.low, exp))


def _outcome(signal_id: int) -> SignalOutcome:
    return SignalOutcome.objects.get(signal_id=signal_id)


def _closed(signal_id: int) -> bool:
    return _outcome(signal_id).status != "open"


def _long(*, tp: Decimal, sl: Decimal, created_ms: int):
    return signal_create(symbol=SYMBOL, direction="long", entry_price=str((tp + sl) / 2), stop_loss=str(sl),
                         take_profit=str(tp), confidence=50, created_at=at_of(created_ms)).signal


def _first_reaching(tape, *, tp: Decimal, sl: Decimal):
    return next((ts, p, "tp_hit" if p >= tp else "sl_hit") for ts, p in tape if p >= tp or p <= sl)


@pytest.fixture
def feed_settings(settings):
    settings.FEED_SYMBOLS = [SYMBOL]
    settings.READINESS_WINDOW_MINUTES = 2
    return settings


def test_it_closes_at_the_first_streamed_trade_reaching_a_level(
        feed_settings, transactional_db, instruments, feed_redis, loop_thread):
    clock = MarketClock(START, 10)
    feed = Feed(loop_thread, clock).start()
    try:
        created_ms = clock.ms()
        ahead = feed.tape(created_ms, created_ms + 20_000)
        tp = max(p for _, p in ahead[: len(ahead) // 2])      # reached within ~10 market seconds
        sl = min(p for _, p in ahead) - 1
        signal = _long(tp=tp, sl=sl, created_ms=created_ms)
        wait_until(lambda: _closed(signal.id), timeout=20)
    finally:
        feed.stop()
        loop_thread.call(feed.sim.stop())
    ts, price, status = _first_reaching(feed.tape(created_ms, clock.ms()), tp=tp, sl=sl)
    row = _outcome(signal.id)
    assert (row.status, row.exit_price, row.closed_at) == (status, price, at_of(ts))
    assert row.legs[0]["exit_price"] == format(price.normalize(), "f")


def test_it_decides_an_outage_by_the_backfilled_minutes(
        feed_settings, transactional_db, instruments, feed_redis, loop_thread):
    clock = MarketClock(START, 40)
    feed = Feed(loop_thread, clock).start()
    try:
        created_ms = clock.ms()
        # The socket drops now and stays refused through the next three full minutes.
        feed.sim.refuse_handshakes(10**6)
        feed.sim.drop_all()
        first_full = (created_ms // MINUTE + 1) * MINUTE
        outage_end = first_full + 3 * MINUTE
        highs = [feed.minute(first_full + i * MINUTE)[0] for i in range(3)]
        before = feed.tape(created_ms - 10_000, first_full)          # streamed or in a partial minute
        lows = [feed.minute(first_full + i * MINUTE)[1] for i in range(3)] + [p for _, p in before]
        tp = max(highs)
        sl = min(lows) - 1
        assert tp > max(p for _, p in before), "the tape must reach the target only during the outage"
        signal = _long(tp=tp, sl=sl, created_ms=created_ms)
        time.sleep(clock.real_seconds_until(outage_end / 1000 + 5))
        feed.sim.refuse_handshakes(0)
        wait_until(lambda: _closed(signal.id), timeout=20)
    finally:
        feed.stop()
        loop_thread.call(feed.sim.stop())
    hit_minute = first_full + highs.index(tp) * MINUTE
    row = _outcome(signal.id)
    # The candle rule: the minute's high reached the target, exit AT the level.
    assert (row.status, row.exit_price, row.closed_at) == ("tp_hit", tp, at_of(hit_minute))
    assert row.evaluated_until <= at_of(outage_end + MINUTE)


def test_it_decides_the_same_across_a_feed_restart(
        feed_settings, transactional_db, instruments, feed_redis, loop_thread):
    """Stop the feed after target 1 (a trailing stop follows the best price), stay
    down over a full minute, start a new feed: the result equals the engine run on
    what the two feeds streamed plus the backfilled minutes between them (legs,
    stop, R, times)."""
    clock = MarketClock(START, 10)
    feed = Feed(loop_thread, clock).start()
    created_ms = clock.ms()
    prices = [p for _, p in feed.tape(created_ms, created_ms + 30_000)]
    t1 = max(prices[: len(prices) // 6])
    t2 = max(prices) + 1000                                        # never reached
    sl = min(prices) - 1000
    entry = (t1 + sl) / 2
    ladder = [{"price": str(t1), "portion": "0.5"}, {"price": str(t2), "portion": "0.5"}]
    rule = {"type": "trailing", "distance_pct": "0.2"}   # ~120 below the best price: stays open
    signal = signal_create(symbol=SYMBOL, direction="long", entry_price=str(entry), stop_loss=str(sl),
                           take_profit=str(t2), confidence=50, created_at=at_of(created_ms), targets=ladder,
                           stop_rule=rule).signal
    try:
        wait_until(lambda: (_outcome(signal.id).legs or [{}])[0].get("status") == "tp_hit", timeout=20)
    finally:
        feed.stop()
    last_a = feed.runner.outcomes.book.book(SYMBOL).last_ms
    assert _outcome(signal.id).status == "open"
    time.sleep(clock.real_seconds_until(((last_a // MINUTE) + 2) * MINUTE / 1000 + 3))
    restarted = Feed(loop_thread, clock, sim=feed.sim).start()
    try:
        time.sleep(clock.real_seconds_until(clock() + 20))
    finally:
        restarted.stop()
        loop_thread.call(feed.sim.stop())
    book = restarted.runner.outcomes.book.book(SYMBOL)
    first_b, last_b = book.recent[0][0], book.last_ms
    assert restarted.runner.outcomes.counters["catchups"] >= 1

    levels = levels_build(direction="long", entry=entry, stop=sl, targets=ladder, stop_rule=rule,
                          created_at=at_of(created_ms))
    state = state_new(levels)
    for ts, price in feed.tape(created_ms, last_a):
        apply_trade(levels, state, price=price, at=at_of(ts))
    for open_ms in range((last_a // MINUTE + 1) * MINUTE, first_b - MINUTE + 1, MINUTE):
        high, low = feed.minute(open_ms)
        minute = [p for _, p in feed.tape(open_ms - 1, open_ms + MINUTE - 1)]
        apply_candle(levels, state, open_time=at_of(open_ms), open=minute[0], high=high, low=low,
                     close=minute[-1], end=at_of(open_ms + MINUTE))
    for ts, price in feed.tape(first_b - 1, last_b):
        apply_trade(levels, state, price=price, at=at_of(ts))
    expected = outcome_record(levels, state)
    row = _outcome(signal.id)
    assert (row.status, row.closed_at, row.exit_price, row.r_multiple) == (
        expected["status"], expected["closed_at"], expected["exit_price"], expected["r_multiple"])
    assert row.legs == expected["legs"]
    if row.status == "open":
        assert row.stop_price == expected["stop_price"]
