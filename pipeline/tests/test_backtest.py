"""`manage.py backtest` against a small case computed by hand, its errors, and the
promise that it writes nothing."""
from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from pipeline.aggregation import ms_to_dt
from pipeline.models import Candle
from signals.models import Instrument, Signal

HOUR = 3_600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR

# (open, high, low, close) per 1h candle. Bollinger(3, k=1), ATR(2), stop 1 ATR,
# take-profit 2 ATRs. By hand:
# (Every decision replays the live runner's 30-candle window, so 30 flat candles
# come first; the flat stretch leaves nothing of the window's start in the values.)
#  0-29 flat at 100 (range 99-101): true range 2, ATR 2, bands collapsed on 100.
#  30   close 105 breaks above the upper band (104.02; the previous close 100 was at
#       the band): LONG at 105. True range 6, ATR (2 + 6) / 2 = 4: stop 101, TP 113.
#  31   range 104-108: nothing reached. TR 4, ATR 4.
#  32   high 114 reaches the TP: exit at the level 113, R = (113 - 105) / 4 = +2.
#       TR 8, ATR 6.
#  33   close 100 breaks below the lower band (101.41): SHORT at 100. TR 12, ATR 9:
#       stop 109, TP 82.
#  34   high 110 reaches the stop: exit at the level 109, R = -1.
#  35   quiet, inside the bands.
# Two trades: +2 and -1. Win rate 0.5, average R 0.5, total 1, profit factor 2,
# max drawdown 1 R (from +2 down to +1).
CANDLES = [(100, 101, 99, 100)] * 30 + [
    (100, 106, 100, 105),
    (105, 108, 104, 107),
    (107, 114, 106, 112),
    (112, 112, 100, 100),
    (100, 110, 99, 108),
    (108, 109, 107, 108),
]
PARAMS = {"period": 3, "k": 1.0, "atr_period": 2, "stop_atr": 1.0, "take_profit_atr": 2.0}


@pytest.fixture
def hourly(instruments):
    btc = Instrument.objects.get(symbol="BTCUSDT")
    now = ms_to_dt(T0)
    Candle.objects.bulk_create(
        Candle(instrument=btc, timeframe="1h", open_time=ms_to_dt(T0 + i * HOUR), open=Decimal(o), high=Decimal(h),
               low=Decimal(lo), close=Decimal(c), volume=Decimal(1), trades=1, first_trade_ms=0, first_trade_id=0,
               last_trade_ms=0, last_trade_id=0, closed=True, source="rollup", updated_at=now)
        for i, (o, h, lo, c) in enumerate(CANDLES))


def _run(*extra: str, params=PARAMS) -> str:
    out = StringIO()
    call_command("backtest", "--strategy", "bollinger_breakout", "--symbol", "btcusdt", "--timeframe", "1h",
                 "--from", ms_to_dt(T0).isoformat(), "--to", ms_to_dt(T0 + 48 * HOUR).isoformat(),
                 "--params", json.dumps(params), "--no-progress", *extra, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_it_scores_the_hand_computed_case(hourly):
    signals_before = Signal.objects.count()
    report = json.loads(_run("--json"))
    trades = [(t["candle_open_time"], t["direction"], t["entry"], t["stop_loss"], t["take_profit"], t["status"],
               t["exit_price"], t["r"]) for t in report["trades"]]
    iso = lambda i: ms_to_dt(T0 + i * HOUR).isoformat().replace("+00:00", "Z")  # noqa: E731
    assert [(a, b, Decimal(c), Decimal(d), Decimal(e), f, Decimal(g), Decimal(h)) for a, b, c, d, e, f, g, h in trades] == [
        (iso(30), "long", Decimal(105), Decimal(101), Decimal(113), "tp_hit", Decimal(113), Decimal(2)),
        (iso(33), "short", Decimal(100), Decimal(109), Decimal(82), "sl_hit", Decimal(109), Decimal(-1)),
    ]
    assert report["trades"][0]["closed_at"] == iso(32) and report["trades"][1]["closed_at"] == iso(34)
    summary = report["summary"]
    assert (summary["trades"], summary["wins"], summary["losses"], summary["open"]) == (2, 1, 1, 0)
    assert Decimal(summary["win_rate"]) == Decimal("0.5")
    assert Decimal(summary["average_r"]) == Decimal("0.5")
    assert Decimal(summary["total_r"]) == Decimal(1)
    assert Decimal(summary["profit_factor"]) == Decimal(2)
    assert Decimal(summary["max_drawdown_r"]) == Decimal(1)
    assert Signal.objects.count() == signals_before


@pytest.mark.django_db
def test_it_prints_a_table_and_the_figures(hourly):
    text = _run()
    assert "tp_hit" in text and "sl_hit" in text
    assert "win rate 0.5000" in text and "profit factor 2.0000" in text and "max drawdown 1" in text


@pytest.mark.django_db
def test_it_applies_the_cooldown_like_the_live_runner(hourly):
    # The short fires 3 hours after the long: a 4-hour cooldown holds it back.
    report = json.loads(_run("--json", "--cooldown", "240"))
    assert [t["direction"] for t in report["trades"]] == ["long"]


@pytest.mark.django_db
@pytest.mark.parametrize("args,message", [
    (["--strategy", "moon"], "Unknown strategy"),
    (["--params", "{not json"], "not valid JSON"),
    (["--params", '{"period": 1, "speed": 2}'], "period: Must be between"),
    (["--symbol", "NOPE"], "Unknown symbol"),
    (["--timeframe", "2h"], "'2h' is not stored"),
    (["--from", "2026-13-01"], "not a valid date"),
    (["--from", "2030-01-02", "--to", "2030-01-01"], "--from must be before --to"),
    (["--from", "2001-01-01", "--to", "2001-01-02"], "backfill them first"),
])
def test_it_explains_bad_arguments(hourly, args, message):
    base = {"--strategy": "bollinger_breakout", "--symbol": "BTCUSDT", "--timeframe": "1h",
            "--from": ms_to_dt(T0).isoformat(), "--to": ms_to_dt(T0 + 24 * HOUR).isoformat(), "--params": "{}"}
    base.update(dict(zip(args[::2], args[1::2])))
    with pytest.raises(CommandError, match=message):
        call_command("backtest", *[x for kv in base.items() for x in kv], "--no-progress",
                     stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_it_proposes_exactly_what_the_live_runner_published_on_the_same_candles(instruments):
    import math

    from pipeline.backtest import CandleRow, backtest_run
    from pipeline.strategies import params_clean, strategy_get
    from pipeline.strategy_services import strategies_run, strategy_config_create
    from pipeline.tests.test_strategy_run import T0 as T1, _now_after, _store

    closes = [200.0 - i for i in range(60)] + [141.0 + i for i in range(60)] + \
        [160 + 10 * math.sin(i / 3) for i in range(120)]
    config = strategy_config_create(strategy="macd_cross", symbol="BTCUSDT", timeframe="1m", params={"ladder": 2})
    for i, close in enumerate(closes):
        _store("BTCUSDT", [close], start_index=i)
        strategies_run(symbols=["BTCUSDT"], now=_now_after(i))
    live = [(int(s.trigger_candle_open_time.timestamp() * 1000), s.direction, s.entry_price, s.stop_loss,
             s.take_profit, [(Decimal(t["price"]), Decimal(t["portion"])) for t in s.targets])
            for s in Signal.objects.filter(trigger_config_id=config.pk).order_by("id")]
    assert len(live) >= 3
    rows = Candle.objects.filter(instrument__symbol="BTCUSDT", timeframe="1m").order_by("open_time")
    candles = [CandleRow(int(c.open_time.timestamp() * 1000), c.open, c.high, c.low, c.close) for c in rows]
    strategy = strategy_get("macd_cross")
    params, _ = params_clean(strategy, config.params)
    result = backtest_run(strategy=strategy, params=params, timeframe="1m", candles=candles, start_ms=T1,
                          tick=Instrument.objects.get(symbol="BTCUSDT").tick_size)
    simulated = [(t.candle_open_ms, t.direction, t.entry, t.stop, t.take_profit, list(t.levels.targets))
                 for t in result.trades]
    assert simulated == live
