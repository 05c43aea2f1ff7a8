"""End to end: the real feed against the simulator (accelerated market clock) rings
the Celery task as candles close, and enabled configs turn closed candles into
signals within seconds of the close; `seed_strategies` is safe to run twice."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from io import StringIO

import pytest
from celery import current_app
from django.core.management import CommandError, call_command

from pipeline.aggregation import dt_to_ms
from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.models import Candle, StrategyConfig
from pipeline.strategy_services import DEMO_CONFIGS, strategy_config_create
from pipeline.tests.feed_fixtures import feed_redis, loop_thread, make_simulator, minute_clock  # noqa: F401
from signals.models import Signal

MINUTE = 60_000


@pytest.fixture
def eager_celery():
    """Tasks run in the caller (the feed's doorbell thread) instead of a worker."""
    before = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = before


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def test_it_turns_closed_candles_into_signals_within_seconds(settings, transactional_db, instruments, feed_redis,
                                                             loop_thread, eager_celery):
    settings.FEED_SYMBOLS = ["BTCUSDT"]
    settings.READINESS_WINDOW_MINUTES = 60
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 2, "slow": 3})
    speed = 30
    clock = minute_clock(speed=speed, seconds_before_boundary=5)
    sim = loop_thread.call(make_simulator(clock=clock, symbols=["BTCUSDT"], trades_per_second=4,
                                          kline_push_interval=0.05).start())
    runner = FeedRunner(ws_url=sim.ws_url, rest=BinanceRestClient(sim.rest_url, clock=clock), clock=clock,
                        batch_interval=0.05, publish_interval=0.2, supervise_interval=0.5)
    stop = loop_thread.call(_new_event())
    future = asyncio.run_coroutine_threadsafe(runner.run(stop), loop_thread.loop)
    seen: dict[int, float] = {}
    try:
        # Several market minutes pass in a few real seconds; record when (real time)
        # each signal appeared.
        deadline = time.monotonic() + 90
        live_after = dt.datetime.fromtimestamp(clock.start, dt.timezone.utc)
        while time.monotonic() < deadline:
            for pk in Signal.objects.filter(trigger_config_id=config.pk).values_list("id", flat=True):
                seen.setdefault(pk, time.time())
            # Wait for a signal on a candle that closed while the test watched.
            if Signal.objects.filter(trigger_config_id=config.pk,
                                     trigger_candle_open_time__gte=live_after - dt.timedelta(minutes=1)).exists():
                break
            time.sleep(0.05)
    finally:
        loop_thread.call_soon(stop.set)
        future.result(15)
        loop_thread.call(sim.stop())
    live = 0
    for signal in Signal.objects.filter(pk__in=seen):
        assert signal.source == "ema_crossover" and signal.trigger_timeframe == "1m"
        candle = Candle.objects.get(instrument__symbol="BTCUSDT", timeframe="1m",
                                    open_time=signal.trigger_candle_open_time)
        assert candle.closed and signal.entry_price == candle.close
        close_market_s = (dt_to_ms(signal.trigger_candle_open_time) + MINUTE) / 1000
        # Real seconds between the candle's close and the signal's appearance. The
        # first minutes come from the backfill at startup, so only live closes count.
        if close_market_s > clock.start:
            close_real = clock._real0 + (close_market_s - clock.start) / speed
            assert seen[signal.pk] - close_real < 5.0, "evaluated long after the candle closed"
            live += 1
    assert live >= 1, "no signal on a live candle close within 90 s"
    config.refresh_from_db()
    assert config.last_evaluated_at is not None


def test_it_seeds_the_demo_configs_once(db, instruments):
    out = StringIO()
    call_command("seed_strategies", stdout=out)
    assert f"{len(DEMO_CONFIGS)} created" in out.getvalue()
    configs = list(StrategyConfig.objects.values_list("strategy", "instrument__symbol", "timeframe", "enabled"))
    assert sorted(configs) == sorted((s, sym, tf, True) for s, sym, tf, _, _ in DEMO_CONFIGS)
    StrategyConfig.objects.filter(strategy="macd_cross").update(enabled=False)
    out = StringIO()
    call_command("seed_strategies", stdout=out)
    assert f"0 created, {len(DEMO_CONFIGS)} already there" in out.getvalue()
    assert StrategyConfig.objects.count() == len(DEMO_CONFIGS)
    assert not StrategyConfig.objects.get(strategy="macd_cross").enabled


def test_it_says_to_bootstrap_first_when_no_instrument_exists(db):
    with pytest.raises(CommandError, match="bootstrap"):
        call_command("seed_strategies", stdout=StringIO())
