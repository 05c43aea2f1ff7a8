"""Strategies on constructed series: each fires where the pattern is and stays
silent where it is not; levels come from ATR multiples; params are validated."""
from __future__ import annotations

import math

import pytest

from pipeline.indicators import ATR
from pipeline.strategies import STRATEGIES, Bar, params_clean, replay, strategy_catalog, strategy_get
from pipeline.strategies.base import levels_from_atr
from pipeline.strategies.replay import window_decide, window_size

MINUTE = 60_000


def _bars(closes: list[float], spread: float = 0.5) -> list[Bar]:
    return [Bar(open_ms=i * MINUTE, open=c, high=c + spread, low=c - spread, close=c) for i, c in enumerate(closes)]


def _decisions(name: str, closes: list[float], **params):
    strategy = strategy_get(name)
    clean, errors = params_clean(strategy, params)
    assert errors == {}
    return [(i, p) for i, (_, p) in enumerate(replay(strategy, clean, _bars(closes))) if p is not None]


def _v_shape(n_down: int, n_up: int, start: float = 200.0, step: float = 1.0) -> list[float]:
    down = [start - step * i for i in range(n_down)]
    bottom = down[-1]
    return down + [bottom + step * (i + 1) for i in range(n_up)]


def _flat_noise(n: int, center: float = 100.0, amplitude: float = 0.2) -> list[float]:
    return [center + amplitude * math.sin(i * 1.3) for i in range(n)]


def test_it_fires_rsi_reversal_long_when_rsi_leaves_oversold():
    closes = _v_shape(40, 20)
    fired = _decisions("rsi_reversal", closes)
    assert fired, "expected a long after the turn"
    index, proposal = fired[0]
    assert index >= 40, "must not fire while the price is still falling"
    assert proposal.direction == "long"
    assert "RSI(14) rose back above 30" in proposal.note
    assert proposal.entry == closes[index]


def test_it_fires_rsi_reversal_short_after_overbought():
    closes = [100 + i for i in range(40)] + [139 - i for i in range(1, 10)]
    fired = _decisions("rsi_reversal", closes)
    assert fired and fired[0][1].direction == "short" and fired[0][0] >= 40


def test_it_keeps_rsi_reversal_silent_in_a_quiet_market():
    assert _decisions("rsi_reversal", _flat_noise(300)) == []


def test_it_fires_ema_crossover_both_ways():
    closes = _v_shape(60, 60)
    fired = _decisions("ema_crossover", closes, fast=5, slow=20)
    assert [p.direction for _, p in fired] == ["long"]
    assert fired[0][0] > 60
    closes = [100 + i for i in range(60)] + [159 - i for i in range(1, 60)]
    fired = _decisions("ema_crossover", closes, fast=5, slow=20)
    assert [p.direction for _, p in fired] == ["short"]
    assert "EMA(5) crossed below EMA(20)" in fired[0][1].note


def test_it_keeps_ema_crossover_silent_in_a_steady_trend():
    assert _decisions("ema_crossover", [100 + 0.5 * i for i in range(300)]) == []


def test_it_fires_bollinger_breakout_on_a_jump_out_of_a_range():
    closes = _flat_noise(60) + [103.0]
    fired = _decisions("bollinger_breakout", closes)
    assert [(i, p.direction) for i, p in fired] == [(60, "long")]
    closes = _flat_noise(60) + [97.0]
    assert [(i, p.direction) for i, p in _decisions("bollinger_breakout", closes)] == [(60, "short")]


def test_it_keeps_bollinger_breakout_silent_inside_the_bands():
    assert _decisions("bollinger_breakout", _flat_noise(300)) == []


def test_it_fires_macd_cross_when_momentum_turns():
    closes = _v_shape(80, 40)
    fired = _decisions("macd_cross", closes)
    assert fired and fired[0][1].direction == "long" and fired[0][0] >= 80
    assert "crossed above its signal line" in fired[0][1].note


def test_it_keeps_macd_cross_silent_in_a_steady_trend():
    assert _decisions("macd_cross", [100 + 0.5 * i for i in range(300)]) == []


def test_it_places_levels_at_atr_multiples():
    closes = _flat_noise(60) + [103.0]
    bars = _bars(closes)
    atr = ATR(14)
    for b in bars:
        atr.update(b.high, b.low, b.close)
    fired = _decisions("bollinger_breakout", closes, stop_atr=2.0, take_profit_atr=4.0)
    proposal = fired[0][1]
    assert proposal.stop == pytest.approx(103.0 - 2.0 * atr.value, rel=1e-12)
    assert proposal.take_profit == pytest.approx(103.0 + 4.0 * atr.value, rel=1e-12)
    assert 0 <= proposal.confidence <= 100


def test_it_builds_an_even_take_profit_ladder():
    stop, take_profit, targets = levels_from_atr(direction="short", entry=100.0, atr=2.0,
                                                 params={"stop_atr": 1.0, "take_profit_atr": 3.0, "ladder": 3})
    assert stop == 102.0 and take_profit == 94.0
    assert [round(p, 9) for p, _ in targets] == [98.0, 96.0, 94.0]
    assert sum(portion for _, portion in targets) == pytest.approx(1.0)


def test_it_decides_a_window_like_a_full_replay_of_that_window():
    strategy = strategy_get("ema_crossover")
    params, _ = params_clean(strategy, {"fast": 5, "slow": 20})
    bars = _bars(_v_shape(60, 60))
    size = window_size(strategy, params)
    for end in range(size, len(bars) + 1):
        window = bars[end - size:end]
        assert window_decide(strategy, params, window) == list(replay(strategy, params, window))[-1][1]


def test_it_describes_every_strategy_in_the_catalog():
    catalog = {entry["name"]: entry for entry in strategy_catalog()}
    assert set(catalog) == set(STRATEGIES) == {"rsi_reversal", "ema_crossover", "bollinger_breakout", "macd_cross"}
    for entry in catalog.values():
        assert entry["description"]
        for param in entry["params"]:
            assert param["type"] in ("int", "float")
            assert param["min"] <= param["default"] <= param["max"]


def test_it_fills_defaults_and_reports_every_bad_param_at_once():
    strategy = strategy_get("ema_crossover")
    clean, errors = params_clean(strategy, {"fast": 5})
    assert errors == {} and clean["fast"] == 5 and clean["slow"] == 21
    _, errors = params_clean(strategy, {"fast": "x", "slow": 9999, "speed": 1, "stop_atr": True})
    assert set(errors) == {"fast", "slow", "speed", "stop_atr"}
    assert "between 3 and 400" in errors["slow"][0]
    _, errors = params_clean(strategy, {"fast": 30, "slow": 20})
    assert errors == {"fast": ["Must be shorter than slow."]}
    _, errors = params_clean(strategy, [1, 2])
    assert "params" in errors
