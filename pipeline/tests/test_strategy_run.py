"""Running strategies on stored closed candles (real PostgreSQL): signals through
signal_create with the trigger, idempotent under reruns and racing workers,
cooldown, stale candles, and restart equivalence of the warm-up."""
from __future__ import annotations

import datetime as dt
import math
import threading
from decimal import Decimal

import pytest
from django.db import connection

from pipeline.aggregation import ms_to_dt
from pipeline.models import Candle, StrategyConfig
from pipeline.strategies import Bar, params_clean, strategy_get
from pipeline.strategies.replay import window_decide, window_size
from pipeline.strategy_services import RunReport, _publish, strategies_run, strategy_config_create
from signals.models import Signal

MINUTE = 60_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000


def _store(symbol: str, closes: list[float], *, start_index: int = 0, timeframe: str = "1m") -> None:
    from signals.models import Instrument

    instrument = Instrument.objects.get(symbol=symbol)
    now = ms_to_dt(T0)
    rows = []
    for i, close in enumerate(closes, start=start_index):
        c = Decimal(str(round(close, 4)))
        rows.append(Candle(instrument=instrument, timeframe=timeframe, open_time=ms_to_dt(T0 + i * MINUTE),
                           open=c, high=c + Decimal("0.5"), low=c - Decimal("0.5"), close=c, volume=Decimal(1),
                           trades=1, first_trade_ms=0, first_trade_id=0, last_trade_ms=0, last_trade_id=0,
                           closed=True, source="exchange", updated_at=now))
    Candle.objects.bulk_create(rows)


def _now_after(index: int) -> dt.datetime:
    """The moment just after candle `index` closed."""
    return ms_to_dt(T0 + (index + 1) * MINUTE + 2000)


def _v_shape() -> list[float]:
    down = [200.0 - i for i in range(60)]
    return down + [down[-1] + i + 1 for i in range(60)] + [200.0 - 0.5 * i for i in range(80)]


def _signals(config: StrategyConfig) -> list[tuple]:
    return list(Signal.objects.filter(trigger_config_id=config.pk).order_by("trigger_candle_open_time").values_list(
        "direction", "entry_price", "stop_loss", "take_profit", "confidence", "note", "trigger_candle_open_time",
        "trigger_timeframe", "source", "timeframe"))


def _run_one_by_one(symbol: str, config: StrategyConfig, closes: list[float]) -> None:
    for i, close in enumerate(closes):
        _store(symbol, [close], start_index=i)
        strategies_run(symbols=[symbol], now=_now_after(i))


@pytest.mark.django_db
def test_it_creates_the_signal_the_strategy_proposes_on_a_closed_candle(instruments):
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 5, "slow": 20})
    closes = _v_shape()
    _run_one_by_one("BTCUSDT", config, closes)
    made = list(Signal.objects.filter(trigger_config_id=config.pk).order_by("id"))
    assert [s.direction for s in made] == ["long", "short"]
    # The same pure decision, computed here from the same window, fired on that candle.
    strategy = strategy_get("ema_crossover")
    params, _ = params_clean(strategy, config.params)
    size = window_size(strategy, params)
    bars = [Bar(T0 + i * MINUTE, c, c + 0.5, c - 0.5, c) for i, c in enumerate(round(c, 4) for c in closes)]
    fired = [i for i in range(size - 1, len(bars)) if window_decide(strategy, params, bars[i + 1 - size:i + 1])]
    assert [ms_to_dt(T0 + i * MINUTE) for i in fired] == [s.trigger_candle_open_time for s in made]
    first = made[0]
    assert first.source == "ema_crossover" and first.timeframe == "1m"
    assert first.trigger_config_id == config.pk and first.trigger_timeframe == "1m"
    assert first.entry_price == Decimal(str(closes[fired[0]]))
    assert first.stop_loss < first.entry_price < first.take_profit
    # Levels are rounded to the instrument's tick (0.01).
    assert first.stop_loss == first.stop_loss.quantize(Decimal("0.01"))
    assert "EMA(5) crossed above EMA(20)" in first.note
    config.refresh_from_db()
    assert config.last_candle_open_time == ms_to_dt(T0 + (len(closes) - 1) * MINUTE)
    assert config.last_evaluated_at == _now_after(len(closes) - 1)


@pytest.mark.django_db
def test_it_decides_after_a_restart_exactly_what_an_uninterrupted_run_decides(instruments):
    """BTCUSDT's worker runs after every candle. ETHUSDT gets the same candles, but
    its worker starts with no state at all after 50 candles were stored at once (a
    backfill), and then misses runs so that it catches up on two candles at a time:
    from its first candle on, it makes exactly the signals of the uninterrupted run."""
    closes = _v_shape() + [160 + 10 * math.sin(i / 3) for i in range(120)]
    steady = strategy_config_create(strategy="macd_cross", symbol="BTCUSDT", timeframe="1m")
    restarted = strategy_config_create(strategy="macd_cross", symbol="ETHUSDT", timeframe="1m")
    _run_one_by_one("BTCUSDT", steady, closes)
    _store("ETHUSDT", closes[:50])
    strategies_run(symbols=["ETHUSDT"], now=_now_after(49))
    done = 50
    while done < len(closes):
        burst = 2 if done % 3 else 1
        _store("ETHUSDT", closes[done:done + burst], start_index=done)
        done += burst
        strategies_run(symbols=["ETHUSDT"], now=_now_after(done - 1))
    first = ms_to_dt(T0 + 49 * MINUTE)
    expected = [s for s in _signals(steady) if s[6] >= first]
    assert len(expected) >= 3
    assert _signals(restarted) == expected


@pytest.mark.django_db
def test_it_never_makes_a_second_signal_when_a_candle_is_evaluated_again(instruments):
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 5, "slow": 20})
    _run_one_by_one("BTCUSDT", config, _v_shape())
    before = _signals(config)
    assert before
    # A rerun from scratch over the same candles (an operator resets the mark).
    StrategyConfig.objects.filter(pk=config.pk).update(last_candle_open_time=ms_to_dt(T0))
    report = strategies_run(now=_now_after(len(_v_shape()) - 1))
    assert report["created"] == []
    assert _signals(config) == before


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_signal_when_two_workers_race(instruments):
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 5, "slow": 20})
    closes = _v_shape()[:70]
    _store("BTCUSDT", closes)
    strategy = strategy_get("ema_crossover")
    params, _ = params_clean(strategy, config.params)
    bars = [Bar(T0 + i * MINUTE, c, c + 0.5, c - 0.5, c) for i, c in enumerate(closes)]
    fire = next(i for i in range(len(bars)) if window_decide(strategy, params, bars[:i + 1]))
    proposal = window_decide(strategy, params, bars[:fire + 1])
    config = StrategyConfig.objects.select_related("instrument").get(pk=config.pk)
    barrier = threading.Barrier(4)
    reports = [RunReport() for _ in range(4)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            if n < 2:
                # Two workers publishing the same (config, candle) at once.
                _publish(config, strategy, bars[fire], proposal, reports[n])
            else:
                # Two full runs at once (they lock the config row; one skips it).
                reports[n].created.extend(strategies_run(now=_now_after(fire))["created"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    # Exactly one of the four made it; the others got the existing signal back.
    assert sum(len(r.created) for r in reports) == 1
    assert sum(r.existing for r in reports[:2]) >= 1
    assert Signal.objects.filter(trigger_config_id=config.pk, trigger_candle_open_time=ms_to_dt(T0 + fire * MINUTE)
                                 ).count() == 1
    assert Signal.objects.filter(trigger_config_id=config.pk).count() == 1


def _breakouts() -> list[float]:
    quiet = [100 + 0.2 * math.sin(i * 1.3) for i in range(80)]
    return quiet + [103.0, 100.1, 100.0, 99.9, 100.0, 104.0] + quiet[:10]


@pytest.mark.django_db
@pytest.mark.parametrize("cooldown,expected", [(0, 2), (30, 1)])
def test_it_holds_back_a_proposal_during_the_cooldown(instruments, cooldown, expected):
    config = strategy_config_create(strategy="bollinger_breakout", symbol="BTCUSDT", timeframe="1m",
                                    cooldown_minutes=cooldown)
    _run_one_by_one("BTCUSDT", config, _breakouts())
    assert [s[0] for s in _signals(config)] == ["long"] * expected


@pytest.mark.django_db
def test_it_does_not_publish_a_proposal_on_a_stale_candle(instruments):
    config = strategy_config_create(strategy="bollinger_breakout", symbol="BTCUSDT", timeframe="1m")
    closes = _breakouts()[:81]
    _store("BTCUSDT", closes[:80])
    strategies_run(now=_now_after(79))
    _store("BTCUSDT", closes[80:], start_index=80)
    report = strategies_run(now=_now_after(80) + dt.timedelta(minutes=5))
    assert report["proposals"] == 1 and report["skipped"] == {"late": 1}
    assert _signals(config) == []
    config.refresh_from_db()
    assert config.last_candle_open_time == ms_to_dt(T0 + 80 * MINUTE)


@pytest.mark.django_db
def test_it_ignores_disabled_configs_and_other_timeframes(instruments):
    config = strategy_config_create(strategy="bollinger_breakout", symbol="BTCUSDT", timeframe="1m", enabled=False)
    other = strategy_config_create(strategy="bollinger_breakout", symbol="BTCUSDT", timeframe="5m")
    _run_one_by_one("BTCUSDT", config, _breakouts())
    assert _signals(config) == [] and _signals(other) == []
    other.refresh_from_db()
    assert other.last_candle_open_time is None and other.last_evaluated_at is not None
