"""Incremental indicators against TA-Lib on real price series (GOOG daily and
EURUSD hourly, shipped offline by the `backtesting` package)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from backtesting.test import EURUSD, GOOG

from pipeline.indicators import ATR, EMA, MACD, RSI, SMA, BollingerBands

SERIES = {"GOOG": GOOG, "EURUSD": EURUSD}
REL = 1e-9


def _assert_same(name: str, ours: list, expected: np.ndarray) -> None:
    """Where TA-Lib has no value yet, ours is None; elsewhere equal within REL."""
    assert len(ours) == len(expected)
    compared = 0
    for i, (mine, ref) in enumerate(zip(ours, expected)):
        if math.isnan(ref):
            assert mine is None, f"{name}[{i}]: expected warm-up None, got {mine}"
            continue
        assert mine is not None, f"{name}[{i}]: still None, TA-Lib gives {ref}"
        assert mine == pytest.approx(ref, rel=REL, abs=1e-12), f"{name}[{i}]: {mine} != {ref}"
        compared += 1
    assert compared > len(expected) // 2, f"{name}: too few values compared"


def _closes(df) -> np.ndarray:
    return df["Close"].to_numpy(dtype=float)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [5, 20, 50])
def test_it_matches_talib_sma(series, period):
    closes = _closes(SERIES[series])
    sma = SMA(period)
    _assert_same("SMA", [sma.update(x) for x in closes], talib.SMA(closes, timeperiod=period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [9, 21, 50])
def test_it_matches_talib_ema(series, period):
    closes = _closes(SERIES[series])
    ema = EMA(period)
    _assert_same("EMA", [ema.update(x) for x in closes], talib.EMA(closes, timeperiod=period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [7, 14, 21])
def test_it_matches_talib_rsi_wilder(series, period):
    closes = _closes(SERIES[series])
    rsi = RSI(period)
    _assert_same("RSI", [rsi.update(x) for x in closes], talib.RSI(closes, timeperiod=period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("fast,slow,signal", [(12, 26, 9), (5, 35, 5), (8, 17, 9)])
def test_it_matches_talib_macd(series, fast, slow, signal):
    closes = _closes(SERIES[series])
    macd = MACD(fast, slow, signal)
    ours = [macd.update(x) for x in closes]
    expected = talib.MACD(closes, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    for part, name in enumerate(("macd", "signal", "hist")):
        _assert_same(f"MACD.{name}", [None if v is None else v[part] for v in ours], expected[part])


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period,k", [(20, 2.0), (10, 1.5), (50, 2.5)])
def test_it_matches_talib_bollinger_bands(series, period, k):
    closes = _closes(SERIES[series])
    bands = BollingerBands(period, k)
    ours = [bands.update(x) for x in closes]
    upper, middle, lower = talib.BBANDS(closes, timeperiod=period, nbdevup=k, nbdevdn=k, matype=0)
    for part, (name, expected) in enumerate((("lower", lower), ("middle", middle), ("upper", upper))):
        _assert_same(f"BB.{name}", [None if v is None else v[part] for v in ours], expected)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [7, 14, 30])
def test_it_matches_talib_atr(series, period):
    df = SERIES[series]
    high, low, close = (df[c].to_numpy(dtype=float) for c in ("High", "Low", "Close"))
    atr = ATR(period)
    ours = [atr.update(h, lo, c) for h, lo, c in zip(high, low, close)]
    _assert_same("ATR", ours, talib.ATR(high, low, close, timeperiod=period))


def test_it_returns_none_until_warmed_up_and_the_same_value_afterwards():
    sma = SMA(3)
    assert [sma.update(x) for x in (1, 2)] == [None, None]
    assert sma.update(3) == 2.0
    assert sma.value == 2.0
    assert sma.update(6) == pytest.approx(11 / 3)


def test_it_answers_zero_rsi_and_flat_bands_on_a_flat_series():
    rsi, bands = RSI(3), BollingerBands(3, 2.0)
    for _ in range(5):
        r, b = rsi.update(10), bands.update(10)
    assert r == 0.0
    assert b == (10.0, 10.0, 10.0)


@pytest.mark.parametrize("build", [lambda: SMA(0), lambda: EMA(0), lambda: RSI(1), lambda: MACD(1, 26, 9),
                                   lambda: BollingerBands(1), lambda: BollingerBands(20, 0), lambda: ATR(0)])
def test_it_refuses_bad_parameters(build):
    with pytest.raises(ValueError):
        build()
