"""Exchange faults against the project's own Binance-protocol simulator: the real
FeedRunner (as run_feed runs it) lives through rounds of connection drops, a stall,
refused handshakes, malformed frames and REST 429s with Retry-After over accelerated
market time, and must recover every time in the same process with its
subscriptions restored. Afterwards every stored 1m candle of the window equals the
simulator's own kline, and a signal opened before the faults has the outcome the
engine gives on the simulator's tape.

FAULTS_SCALE scales the number of fault rounds (one round at the CI default)."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from faults.conftest import faults_scale
from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.feeds.simulator.market import units_to_str
from pipeline.outcomes.book import at_of
from pipeline.outcomes.engine import apply_trade, levels_build, state_new
from pipeline.outcomes.records import outcome_record
from pipeline.tests.feed_fixtures import MarketClock, feed_redis, loop_thread, make_simulator, wait_until  # noqa: F401
# The exchange's kline as stored values, and the stored 1m candles: the same as the self-healing test's.
from pipeline.tests.test_self_healing import _stored, _truth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STREAMS = ["btcusdt@kline_1m", "btcusdt@trade", "ethusdt@kline_1m", "ethusdt@trade"]
MINUTE = 60_000
SPEED = 20                     # market seconds per real second
START = 1_750_000_005.0        # fixed market time: the same tape on every run
MINUTES_PER_ROUND = 2          # market minutes of faults budgeted per round
TAIL_MINUTES = 3               # clean market minutes after the last fault


async def _event() -> asyncio.Event:
    return asyncio.Event()


def _price(sim, symbol: str, units: int) -> Decimal:
    return Decimal(units_to_str(units, sim.source.profile(symbol).price_exp))


def _levels_reached_only_in_tail(sim, *, created_ms: int, tail_ms: int, end_ms: int) -> dict:
    """Levels no minute before the clean tail touches (so faulted time cannot decide
    the signal, whichever rule the tracker used there) and, when the tape allows,
    reached by a streamed trade in the tail."""
    highs, lows = [], []
    for open_ms in range(created_ms // MINUTE * MINUTE, tail_ms, MINUTE):
        k = sim.tape.kline("BTCUSDT", open_ms=open_ms, interval_ms=MINUTE, upto_ms=open_ms + MINUTE - 1)
        highs.append(_price(sim, "BTCUSDT", k.high))
        lows.append(_price(sim, "BTCUSDT", k.low))
    tail = [_price(sim, "BTCUSDT", t.price) for t in sim.tape.trades_between("BTCUSDT", tail_ms, end_ms - 5_000)]
    top, bottom = max(highs), min(lows)
    if max(tail) > top:
        return {"direction": "long", "take_profit": (top + max(tail)) / 2, "stop_loss": bottom - 1}
    if min(tail) < bottom:
        return {"direction": "short", "take_profit": (bottom + min(tail)) / 2, "stop_loss": top + 1}
    return {"direction": "long", "take_profit": top + 1, "stop_loss": bottom - 1}   # stays open


class Recovery:
    """Time from a fault to a feed streaming again on every subscription."""

    def __init__(self, runner, sim):
        self.runner, self.sim = runner, sim
        self.figures: list[tuple[str, float]] = []

    def conn(self):
        (conn,) = self.runner.manager.connections()   # one logical connection, healed in place
        return conn

    def wait(self, fault: str, started: float, *, reconnects_before: int | None = None, timeout: float = 20) -> None:
        conn = self.conn()
        if reconnects_before is not None:
            wait_until(lambda: conn.health.reconnects > reconnects_before, timeout=timeout)
        wait_until(lambda: conn.state.value == "connected"
                   and [c["streams"] for c in self.sim.clients_snapshot()] == [STREAMS], timeout=timeout)
        trades = conn.health.trades
        wait_until(lambda: conn.health.trades > trades + 5, timeout=timeout)
        self.figures.append((fault, round(time.monotonic() - started, 2)))


def test_it_recovers_from_every_exchange_fault_with_exact_candles_and_outcome(
        settings, transactional_db, instruments, feed_redis, loop_thread):
    from signals.models import SignalOutcome
    from signals.services import signal_create

    settings.FEED_SYMBOLS = SYMBOLS
    settings.READINESS_WINDOW_MINUTES = 3
    settings.FEED_STALE_SECONDS = 60.0
    settings.FEED_STALL_MIN_SECONDS = 0.6
    settings.FEED_STALL_FACTOR = 10.0
    rounds = max(1, round(4 * faults_scale()))
    clock = MarketClock(START, SPEED)
    sim = loop_thread.call(make_simulator(clock=clock, symbols=SYMBOLS, trades_per_second=10,
                                          kline_push_interval=0.05).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url, clock=clock), clock=clock,
                        stale_seconds=2.0, batch_interval=0.05, publish_interval=0.2, supervise_interval=0.2,
                        backoff_base=0.05, backoff_cap=0.2)
    runner.outcomes.poll_interval = 0.05
    stop = loop_thread.call(_event())
    future = asyncio.run_coroutine_threadsafe(runner.run(stop), loop_thread.loop)
    recovery = Recovery(runner, sim)
    injected: dict[str, int] = {}
    try:
        started_ms = clock.ms()
        wait_until(lambda: runner.outcomes.is_live("BTCUSDT")
                   and runner.outcomes.book.book("BTCUSDT").last_ms is not None, timeout=30)
        recovery.wait("start", time.monotonic())
        created_ms = clock.ms()
        tail_ms = (created_ms // MINUTE + 1 + rounds * MINUTES_PER_ROUND) * MINUTE
        end_ms = tail_ms + TAIL_MINUTES * MINUTE
        levels = _levels_reached_only_in_tail(sim, created_ms=created_ms, tail_ms=tail_ms, end_ms=end_ms)
        signal = signal_create(symbol="BTCUSDT", entry_price=str((levels["take_profit"] + levels["stop_loss"]) / 2),
                               confidence=50, created_at=at_of(created_ms), **{
                                   k: v if k == "direction" else str(v) for k, v in levels.items()}).signal
        process = feed_redis.feed_process()
        conn = recovery.conn()

        for _ in range(rounds):
            # 1. Network cut: the socket dies without a closing handshake.
            before, t0 = conn.health.reconnects, time.monotonic()
            assert sim.drop_all() == 1
            injected["drop"] = injected.get("drop", 0) + 1
            recovery.wait("drop", t0, reconnects_before=before)

            # 2. Stall: the socket stays open while no data flows (30 market seconds).
            before, t0 = conn.health.reconnects, time.monotonic()
            sim.stall(30)
            injected["stall"] = injected.get("stall", 0) + 1
            recovery.wait("stall", t0, reconnects_before=before)

            # 3. Drop, then the exchange refuses the next handshakes.
            before, refused, t0 = conn.health.reconnects, conn.health.handshake_failures, time.monotonic()
            sim.refuse_handshakes(3)
            sim.drop_all()
            injected["handshake_refused"] = injected.get("handshake_refused", 0) + 3
            recovery.wait("handshake_refused", t0, reconnects_before=before)
            assert conn.health.handshake_failures >= refused + 3

            # 4. Garbage frames among the real ones: skipped, the stream goes on.
            malformed, t0 = conn.health.malformed, time.monotonic()
            sim.malformed(12)
            injected["malformed"] = injected.get("malformed", 0) + 12
            wait_until(lambda: conn.health.malformed >= malformed + 12, timeout=10)
            recovery.wait("malformed", t0)

            # 5. A drop that outlasts a minute boundary (handshakes refused until 5 market
            # seconds past it), so the reconnect backfills from REST, which answers 429
            # with Retry-After first.
            limited, before = sim.counters["rest_rate_limited"], conn.health.reconnects
            backfilled = runner.counters["backfilled"]
            boundary = (clock.ms() // MINUTE + 1) * MINUTE
            sim.refuse_handshakes(10**6)
            sim.drop_all()
            time.sleep(clock.real_seconds_until(boundary / 1000 + 5))
            sim.rate_limit(2, retry_after=1)
            t0 = time.monotonic()   # recovery counted from when the exchange lets it back in
            sim.refuse_handshakes(0)
            injected["rest_429"] = injected.get("rest_429", 0) + 2
            recovery.wait("rest_429", t0, reconnects_before=before)
            wait_until(lambda: sim.counters["rest_rate_limited"] >= limited + 2, timeout=20)
            # Backfilled after honouring Retry-After (both symbols, the minute of the drop).
            wait_until(lambda: runner.counters["backfilled"] >= backfilled + 2, timeout=20)

        assert clock.ms() < tail_ms, "the faults overran their market-time budget; raise MINUTES_PER_ROUND"
        # Live through the clean tail so its closed klines arrive on the stream.
        time.sleep(clock.real_seconds_until(end_ms / 1000 + 3))
        # Never restarted: the same feed process and the same logical connection.
        assert feed_redis.feed_process()["started_at"] == process["started_at"]
        assert runner.manager.connections() == [conn]
        reconnects = conn.health.reconnects
    finally:
        loop_thread.call_soon(stop.set)
        future.result(20)
        loop_thread.call(sim.stop())

    from pipeline.selectors import candle_gaps

    first = (started_ms // MINUTE - settings.READINESS_WINDOW_MINUTES) * MINUTE
    compared = mismatches = 0
    for symbol in SYMBOLS:
        assert candle_gaps(symbol=symbol, timeframe="1m", since_ms=first, until_ms=end_ms) == []
        stored = _stored(symbol)
        for open_ms in range(first, end_ms, MINUTE):
            expected_row = (*_truth(sim, symbol, open_ms), True)   # closed, too
            compared += 1
            mismatches += stored.get(open_ms) != expected_row
            assert stored.get(open_ms) == expected_row, (symbol, open_ms, runner.counters)

    engine_levels = levels_build(direction=levels["direction"], entry=(levels["take_profit"] + levels["stop_loss"]) / 2,
                                 stop=levels["stop_loss"], take_profit=levels["take_profit"],
                                 created_at=at_of(created_ms))
    state = state_new(engine_levels)
    exp = sim.source.profile("BTCUSDT").price_exp
    for trade in sim.tape.trades_between("BTCUSDT", created_ms, end_ms):
        apply_trade(engine_levels, state, price=Decimal(units_to_str(trade.price, exp)), at=at_of(trade.ts_ms))
    expected = outcome_record(engine_levels, state)
    row = SignalOutcome.objects.get(signal_id=signal.id)
    assert (row.status, row.closed_at, row.exit_price) == (
        expected["status"], expected["closed_at"], expected["exit_price"])
    print(f"\nexchange faults: rounds={rounds} injected={injected} reconnects={reconnects} "
          f"recover_s={recovery.figures} candles_compared={compared} mismatches={mismatches} "
          f"outcome={row.status} simulator={dict(sim.counters)}")
