"""Self-healing against the simulator's stall fault: the socket stays open while the
data stops. The feed notices by each stream's own learned rate (long before the
socket-level stale timeout), reconnects by itself, counts and logs it, the health
score falls and recovers, and the candles end up equal to the exchange's; the feed
process is never restarted."""
from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.feeds.simulator.market import units_to_str
from pipeline.tests.feed_fixtures import (  # noqa: F401
    feed_redis,
    loop_thread,
    make_simulator,
    minute_clock,
    wait_until,
)

MINUTE = 60_000


def _truth(sim, symbol: str, open_ms: int) -> tuple:
    k = sim.tape.kline(symbol, open_ms=open_ms, interval_ms=MINUTE, upto_ms=open_ms + MINUTE - 1)
    p = sim.source.profile(symbol)
    return (Decimal(units_to_str(k.open, p.price_exp)), Decimal(units_to_str(k.high, p.price_exp)),
            Decimal(units_to_str(k.low, p.price_exp)), Decimal(units_to_str(k.close, p.price_exp)),
            Decimal(units_to_str(k.volume, p.qty_exp)), k.trades)


def _stored(symbol: str) -> dict[int, tuple]:
    from pipeline.models import Candle

    rows = Candle.objects.filter(instrument__symbol=symbol, timeframe="1m")
    return {int(c.open_time.timestamp() * 1000): (c.open, c.high, c.low, c.close, c.volume, c.trades, c.closed)
            for c in rows}


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def test_it_reconnects_a_stalled_stream_by_its_learned_rate_and_the_score_recovers(
        settings, transactional_db, instruments, feed_redis, loop_thread, caplog):
    from pipeline.health_facts import health_check_record
    from pipeline.selectors import candle_gaps

    caplog.set_level("INFO", logger="pipeline")
    settings.FEED_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
    settings.READINESS_WINDOW_MINUTES = 3
    # Only the learned-rate rule can notice this stall: the socket-level limit is far away.
    settings.FEED_STALE_SECONDS = 60.0
    settings.FEED_STALL_MIN_SECONDS = 0.6
    settings.FEED_STALL_FACTOR = 10.0
    clock = minute_clock(speed=20, seconds_before_boundary=50)
    sim = loop_thread.call(make_simulator(clock=clock, trades_per_second=20, kline_push_interval=0.05).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url, clock=clock), clock=clock,
                        batch_interval=0.05, publish_interval=0.1, supervise_interval=0.2,
                        backoff_base=0.05, backoff_cap=0.1)
    stop = loop_thread.call(_new_event())
    future = asyncio.run_coroutine_threadsafe(runner.run(stop), loop_thread.loop)
    scores: list[dict] = []

    def record() -> dict:
        health = health_check_record(now=dt.datetime.fromtimestamp(clock(), dt.timezone.utc))
        scores.append(health)
        return health

    try:
        started_ms = clock.ms()
        wait_until(lambda: all(feed_redis.feed_symbol_health().get(s, {}).get("healthy")
                               for s in ("BTCUSDT", "ETHUSDT")), timeout=10)
        wait_until(lambda: record()["components"]["data_flow"]["points"] == 25, timeout=10, interval=0.3)
        process = feed_redis.feed_process()
        conn = runner.manager.connections()[0]
        assert conn.health.stall_recoveries == 0

        sim.stall(60)  # one market minute = 3 real seconds, sockets left open
        wait_until(lambda: conn.health.stall_recoveries >= 1, timeout=3)
        fallen = record()
        assert fallen["components"]["data_flow"]["points"] < 25, fallen
        assert "BTCUSDT" in fallen["components"]["data_flow"]["reason"]
        assert fallen["score"] < scores[0]["score"]

        wait_until(lambda: record()["components"]["data_flow"]["points"] == 25, timeout=10, interval=0.3)
        recovered = scores[-1]
        assert recovered["components"]["exchange"]["points"] == 20
        # Healed in place: the same feed process, the same logical connection.
        assert feed_redis.feed_process()["started_at"] == process["started_at"]
        assert runner.manager.connections() == [conn] and conn.health.reconnects >= 1
        stall_logs = [r.getMessage() for r in caplog.records if "stream stalled" in r.getMessage()]
        assert stall_logs and "stall limit" in stall_logs[0]
        assert any(r.getMessage().startswith("backfilled") and "reconnected" in r.getMessage()
                   for r in caplog.records)
        # Live until the minute after the stall has closed, so its closed kline arrives.
        boundary = (clock.ms() // MINUTE + 1) * MINUTE
        wait_until(lambda: clock.ms() > boundary + MINUTE + 5_000, timeout=15, interval=0.2)
    finally:
        loop_thread.call_soon(stop.set)
        future.result(15)
        loop_thread.call(sim.stop())
    first = (started_ms // MINUTE - settings.READINESS_WINDOW_MINUTES) * MINUTE
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert candle_gaps(symbol=symbol, timeframe="1m", since_ms=first, until_ms=boundary + MINUTE) == []
        stored = _stored(symbol)
        for open_ms in range(first, boundary + MINUTE, MINUTE):
            assert stored[open_ms][:6] == _truth(sim, symbol, open_ms), (symbol, open_ms - boundary)
            assert stored[open_ms][6]


def test_it_reconnects_a_stream_when_asked_through_redis(settings, transactional_db, instruments, feed_redis,
                                                         loop_thread, caplog):
    from io import StringIO

    import pytest
    from django.core.management import CommandError, call_command

    caplog.set_level("INFO", logger="pipeline")
    with pytest.raises(CommandError, match="is run_feed running"):
        call_command("pipeline_status", "--reconnect", "conn-1")
    settings.FEED_SYMBOLS = ["BTCUSDT"]
    settings.READINESS_WINDOW_MINUTES = 3
    sim = loop_thread.call(make_simulator(trades_per_second=10).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url), batch_interval=0.05,
                        publish_interval=0.1, supervise_interval=0.2, backoff_base=0.05, backoff_cap=0.1)
    stop = loop_thread.call(_new_event())
    future = asyncio.run_coroutine_threadsafe(runner.run(stop), loop_thread.loop)
    try:
        wait_until(lambda: feed_redis.feed_symbol_health().get("BTCUSDT", {}).get("healthy"), timeout=10)
        with pytest.raises(CommandError, match="no feed connection named 'conn-9'; known: conn-1"):
            call_command("pipeline_status", "--reconnect", "conn-9")
        out = StringIO()
        call_command("pipeline_status", "--reconnect", "conn-1", stdout=out)
        assert "asked the feed to reconnect conn-1" in out.getvalue()
        conn = runner.manager.connections()[0]
        wait_until(lambda: conn.health.reconnects == 1 and conn.state.value == "connected", timeout=5)
        assert any("reconnecting on request (operator request" in r.getMessage() for r in caplog.records)
        assert feed_redis.feed_commands_take() == []  # consumed once
    finally:
        loop_thread.call_soon(stop.set)
        future.result(15)
        loop_thread.call(sim.stop())
