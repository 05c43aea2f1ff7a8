"""The feed process end to end against the simulator: readiness, candles without
gaps after a drop, faulty vs clean trade streams, market sessions, and the real
`run_feed` command stopping cleanly on SIGTERM."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from pipeline.feeds.manager import ConnectionManager
from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.feeds.simulator.market import units_to_str
from pipeline.tests.feed_fixtures import (  # noqa: F401
    FeedProcess,
    MarketClock,
    feed_redis,
    loop_thread,
    make_simulator,
    minute_clock,
    wait_until,
)

UTC = dt.timezone.utc
MINUTE = 60_000



def _minute_candles(symbol: str) -> dict[int, object]:
    from pipeline.models import Candle

    rows = Candle.objects.filter(instrument__symbol=symbol, timeframe="1m")
    return {int(c.open_time.timestamp() * 1000): c for c in rows}


def _truth(sim, symbol: str, open_ms: int) -> tuple:
    k = sim.tape.kline(symbol, open_ms=open_ms, interval_ms=MINUTE, upto_ms=open_ms + MINUTE - 1)
    p = sim.source.profile(symbol)
    return (Decimal(units_to_str(k.open, p.price_exp)), Decimal(units_to_str(k.high, p.price_exp)),
            Decimal(units_to_str(k.low, p.price_exp)), Decimal(units_to_str(k.close, p.price_exp)),
            Decimal(units_to_str(k.volume, p.qty_exp)), k.trades)


def _as_tuple(candle) -> tuple:
    return (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.trades)


def _readiness(market: str) -> str:
    from pipeline.selectors import readiness_get

    return str(readiness_get(market=market)[0])


def test_it_goes_active_and_heals_a_drop_across_a_minute_boundary(
        settings, transactional_db, instruments, feed_redis, loop_thread, caplog):
    """Readiness walks WAITING_DATA -> CHECKING_DATA -> READY -> ACTIVE; then the
    connection drops and stays refused across a minute boundary (the closed kline of
    that minute never arrives). After the reconnect every subscription is back and
    the REST backfill makes every minute equal to the exchange's: no gap, no hole."""
    caplog.set_level("INFO", logger="pipeline.feeds")
    settings.FEED_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
    settings.READINESS_WINDOW_MINUTES = 5
    clock = minute_clock(speed=40, seconds_before_boundary=40)
    sim = loop_thread.call(make_simulator(clock=clock, trades_per_second=4, kline_push_interval=0.05).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url, clock=clock), clock=clock,
                        stale_seconds=1.0, batch_interval=0.05, publish_interval=0.1, supervise_interval=0.2,
                        backoff_base=0.05, backoff_cap=0.1)
    stop = loop_thread.call(_new_event())
    future = asyncio.run_coroutine_threadsafe(runner.run(stop), loop_thread.loop)
    try:
        started_ms = clock.ms()
        def transitions():
            return [r.getMessage().split(": ", 1)[1].split(" (")[0] for r in caplog.records
                    if r.getMessage().startswith("market crypto")]

        wait_until(lambda: "READY -> ACTIVE" in transitions(), timeout=5)
        assert _readiness("crypto") == "ACTIVE"
        assert transitions() == [
            "WAITING_DATA", "WAITING_DATA -> CHECKING_DATA", "CHECKING_DATA -> READY", "READY -> ACTIVE"]

        # Outage: from now until 10 market seconds after the next minute boundary.
        boundary = (clock.ms() // MINUTE + 1) * MINUTE
        if boundary - clock.ms() < 10_000:
            boundary += MINUTE
        sim.refuse_handshakes(10**6)
        assert sim.drop_all() == 1
        wait_until(lambda: feed_redis.feed_symbol_health().get("BTCUSDT", {}).get("state") != "connected")
        time.sleep(clock.real_seconds_until(boundary / 1000 + 10))
        sim.refuse_handshakes(0)
        wait_until(lambda: [c["streams"] for c in sim.clients_snapshot()] ==
                   [["btcusdt@kline_1m", "btcusdt@trade", "ethusdt@kline_1m", "ethusdt@trade"]], timeout=3)
        conn = runner.manager.connections()[0]
        # The server lists the socket a moment before the client has registered it.
        wait_until(lambda: conn.health.reconnects == 1 and conn.state.value == "connected", timeout=2)
        assert conn.health.handshake_failures >= 1
        # Live through the next minute so its closed kline arrives on the stream.
        time.sleep(clock.real_seconds_until(boundary / 1000 + 66))
        assert any("reconnected" in r.getMessage() and r.getMessage().startswith("backfilled")
                   for r in caplog.records)
    finally:
        loop_thread.call_soon(stop.set)
        future.result(10)
        loop_thread.call(sim.stop())
    from pipeline.selectors import candle_gaps

    first = (started_ms // MINUTE - settings.READINESS_WINDOW_MINUTES) * MINUTE
    last = boundary + MINUTE  # exclusive: the minute after the outage is closed too
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert candle_gaps(symbol=symbol, timeframe="1m", since_ms=first, until_ms=last) == []
        stored = _minute_candles(symbol)
        for open_ms in range(first, last, MINUTE):
            assert _as_tuple(stored[open_ms]) == _truth(sim, symbol, open_ms), (
                symbol, (open_ms - boundary) // MINUTE, stored[open_ms].source, runner.counters)
            assert stored[open_ms].closed
    assert _readiness("crypto") == "STOPPED"
    assert feed_redis.feed_symbol_health() == {} and feed_redis.feed_process() is None


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def _stream_into_candles(loop_thread, *, faulty: bool) -> tuple[dict, dict, object]:
    """Stream BTCUSDT trades over the same market minute (and into the next, so late
    trades cross a boundary) and aggregate them with
    pipeline.services.trades_ingest; with faults, duplicates and late trades are
    injected throughout. Returns (minute candles, ingest totals, simulator)."""
    from pipeline.models import Candle
    
    Candle.objects.all().delete()
    feed_process = FeedProcess()  # a fresh feed process for each stream
    start = 1_750_000_005.0  # 15 market seconds before a minute boundary (1_750_000_020)
    clock = MarketClock(start, 80)
    sim = loop_thread.call(make_simulator(clock=clock, trades_per_second=5).start())
    received: list = []
    manager = ConnectionManager(ws_url=sim.ws_url, on_trade=received.append, on_kline=lambda k: None,
                                stale_seconds=2, backoff_base=0.05, backoff_cap=0.1, rng=random.Random(1))
    totals = {"duplicates": 0, "late": 0, "accepted": 0}
    loop_thread.call(manager.start())
    try:
        loop_thread.call(manager.subscribe(["btcusdt@trade"]))
        while clock() < start + 15 + 60 + 8:
            if faulty:
                sim.duplicates(4)
                sim.out_of_order(6)
            time.sleep(0.05)
            batch, received[:] = received[:], []
            stats = feed_process.ingest(batch)
            for key in totals:
                totals[key] += stats[key]
    finally:
        loop_thread.call(manager.stop())
        loop_thread.call(sim.stop())
    feed_process.ingest(received)
    return _minute_candles("BTCUSDT"), totals, sim


def test_it_gives_the_same_candles_from_duplicate_and_out_of_order_trades(transactional_db, instruments,
                                                                           loop_thread):
    clean, clean_totals, clean_sim = _stream_into_candles(loop_thread, faulty=False)
    faulty, faulty_totals, faulty_sim = _stream_into_candles(loop_thread, faulty=True)
    assert clean_totals["duplicates"] == 0
    assert faulty_sim.counters["duplicates_sent"] > 20 and faulty_sim.counters["out_of_order_sent"] > 20
    assert faulty_totals["duplicates"] >= faulty_sim.counters["duplicates_sent"]
    full_minute = 1_750_000_020_000
    assert _as_tuple(faulty[full_minute]) == _as_tuple(clean[full_minute]) == \
        _truth(clean_sim, "BTCUSDT", full_minute)


def test_it_streams_a_market_only_during_its_session(settings, transactional_db, instruments, loop_thread):
    from pipeline.selectors import readiness_get

    settings.FEED_SYMBOLS = ["BTCUSDT", "USDCOP"]
    settings.READINESS_WINDOW_MINUTES = 2
    saturday = dt.datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
    monday_open = dt.datetime(2025, 3, 10, 13, 30, tzinfo=UTC)   # 08:30 Bogota
    moment = {"now": saturday}
    clock = lambda: moment["now"].timestamp()  # noqa: E731
    sim = loop_thread.call(make_simulator(clock=clock).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url, clock=clock), clock=clock,
                        stale_seconds=1.0)
    loop_thread.call(runner.manager.start())
    try:
        loop_thread.call(runner.supervise_once(now=saturday))
        state, reason, _ = readiness_get(market="forex")
        assert state == "STOPPED" and "session closed; next open 2025-03-10T13:00:00Z" in reason
        assert runner.manager.streams() == {"btcusdt@trade", "btcusdt@kline_1m"}

        moment["now"] = monday_open
        loop_thread.call(runner.supervise_once(now=monday_open))
        assert "usdcop@trade" in runner.manager.streams() and "usdcop@kline_1m" in runner.manager.streams()
        stored = _minute_candles("USDCOP")
        assert sorted(stored) == [int(monday_open.timestamp() * 1000) - i * MINUTE for i in (2, 1)]

        moment["now"] = saturday
        loop_thread.call(runner.supervise_once(now=saturday))
        assert runner.manager.streams() == {"btcusdt@trade", "btcusdt@kline_1m"}
        assert str(readiness_get(market="forex")[0]) == "STOPPED"
    finally:
        loop_thread.call(runner.manager.stop())
        loop_thread.call(runner.close())
        loop_thread.call(sim.stop())


def test_run_feed_streams_until_sigterm_and_reports_status(settings, transactional_db, instruments, feed_redis,
                                                           loop_thread):
    from conftest import child_database_url

    sim = loop_thread.call(make_simulator(trades_per_second=5).start())
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, DATABASE_URL=child_database_url(), BINANCE_WS_URL=sim.ws_url,
               BINANCE_REST_URL=sim.rest_url, FEED_SYMBOLS="BTCUSDT,ETHUSDT", READINESS_WINDOW_MINUTES="3",
               FEED_STALE_SECONDS="2")
    proc = subprocess.Popen([sys.executable, "manage.py", "run_feed", "--supervise-interval", "0.3"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        settings.FEED_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
        wait_until(lambda: proc.poll() is not None or _readiness("crypto") == "ACTIVE", timeout=20, interval=0.1)
        assert proc.poll() is None, proc.stdout.read()
        wait_until(lambda: all(feed_redis.feed_symbol_health().get(s, {}).get("healthy")
                               for s in ("BTCUSDT", "ETHUSDT")), timeout=5)
        out = StringIO()
        call_command("pipeline_status", stdout=out)
        text = out.getvalue()
        assert "Feed process: running" in text and "ACTIVE" in text
        assert "BTCUSDT  crypto  healthy" in text and "conn-1  connected" in text
        out = StringIO()
        call_command("pipeline_status", "--json", stdout=out)
        status = json.loads(out.getvalue())
        assert status["streams"]["ETHUSDT"]["healthy"] and status["connections"][0]["state"] == "connected"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        loop_thread.call(sim.stop())
    assert proc.returncode == 0, output
    assert "feed conn-1: connected -> disconnecting" in output and "Feed stopped" in output
    assert "Traceback" not in output
    assert _readiness("crypto") == "STOPPED"
    assert feed_redis.feed_process() is None
    assert len(_minute_candles("BTCUSDT")) >= 3


def test_pipeline_status_says_when_no_feed_runs(db, instruments, feed_redis):
    out = StringIO()
    call_command("pipeline_status", stdout=out)
    text = out.getvalue()
    assert "Feed process: not running" in text
    assert "crypto  open 24/7" in text and "BTCUSDT" in text
    assert "(none)" in text  # no connections
