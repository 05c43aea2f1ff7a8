"""Indicator and strategy benchmark (pure CPU, no database).

Prints:
  per-update   for each incremental indicator of pipeline.indicators, the cost of
               one update() on a warmed-up object, beside the baseline: recomputing
               the same value by calling TA-Lib over the last --window candles (what a
               non-incremental design pays per new candle). Target ratio <= 0.05.
  strategies   the time to decide one closed candle for --symbols symbols with every
               registered strategy, as the live runner does it (each decision replays
               the fixed window of candles ending with the candle: restart-equivalent
               by design), and, beside it, the same decisions on indicator state kept
               warm in memory (one update each). Target <= 50 ms for 50 symbols.
The values of both ways are compared first, so a fast wrong answer fails.

    .venv/bin/python bench/indicators.py --window 50000 --symbols 50
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import talib  # noqa: E402

from pipeline.indicators import ATR, EMA, MACD, RSI, SMA, BollingerBands  # noqa: E402
from pipeline.strategies import STRATEGIES, Bar, params_clean  # noqa: E402
from pipeline.strategies.replay import window_decide, window_size  # noqa: E402


def _series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    return close + spread, close - spread, close


def _time_per_call(func, repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            func()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def bench_updates(window: int, updates: int) -> list[tuple[str, float, float]]:
    high, low, close = _series(window + updates, seed=1)
    cases = [
        ("SMA(20)", lambda: SMA(20), lambda o, i: o.update(close[i]), lambda s, e: talib.SMA(close[s:e], 20)[-1]),
        ("EMA(20)", lambda: EMA(20), lambda o, i: o.update(close[i]), lambda s, e: talib.EMA(close[s:e], 20)[-1]),
        ("RSI(14)", lambda: RSI(14), lambda o, i: o.update(close[i]), lambda s, e: talib.RSI(close[s:e], 14)[-1]),
        ("MACD(12,26,9)", lambda: MACD(12, 26, 9), lambda o, i: o.update(close[i]),
         lambda s, e: talib.MACD(close[s:e], 12, 26, 9)[0][-1]),
        ("BBANDS(20,2)", lambda: BollingerBands(20, 2.0), lambda o, i: o.update(close[i]),
         lambda s, e: talib.BBANDS(close[s:e], 20, 2.0, 2.0)[0][-1]),
        ("ATR(14)", lambda: ATR(14), lambda o, i: o.update(high[i], low[i], close[i]),
         lambda s, e: talib.ATR(high[s:e], low[s:e], close[s:e], 14)[-1]),
    ]
    rows = []
    for name, build, step, recompute in cases:
        indicator = build()
        for i in range(window):
            step(indicator, i)
        # Correctness: the incremental value after the window equals TA-Lib's over it.
        ours = indicator.value if not isinstance(indicator.value, tuple) else indicator.value[
            {"MACD(12,26,9)": 0, "BBANDS(20,2)": 2}[name]]
        ref = recompute(0, window)
        assert abs(ours - ref) <= 1e-9 * max(1.0, abs(ref)), (name, ours, ref)
        i = window
        start = time.perf_counter()
        for i in range(window, window + updates):
            step(indicator, i)
        incremental = (time.perf_counter() - start) / updates
        cursor = {"i": window}

        def again():
            e = cursor["i"] = cursor["i"] + 1 if cursor["i"] < window + updates else window + 1
            recompute(e - window, e)

        baseline = _time_per_call(again, max(20, min(200, 2_000_000 // window)))
        rows.append((name, incremental, baseline))
    return rows


def bench_strategies(symbols: int) -> dict[str, float]:
    per_symbol = []
    for s in range(symbols):
        high, low, close = _series(600, seed=100 + s)
        per_symbol.append([Bar(i * 60_000, float(close[i - 1] if i else close[0]), float(high[i]), float(low[i]),
                               float(close[i])) for i in range(600)])
    configs = [(strategy, params_clean(strategy, {})[0]) for strategy in STRATEGIES.values()]
    # Live runner: a window replay per (symbol, strategy) for the newest closed candle.
    def live_once() -> list:
        out = []
        for bars in per_symbol:
            for strategy, params in configs:
                size = window_size(strategy, params)
                out.append(window_decide(strategy, params, bars[-size:]))
        return out

    # Warm state kept in memory: one update + decide per (symbol, strategy).
    warm = []
    for bars in per_symbol:
        for strategy, params in configs:
            size = window_size(strategy, params)
            state = strategy.build(params)
            for bar in bars[-size:-1]:
                state.update(bar)
            warm.append((strategy, params, state, bars[-1]))

    def warm_once() -> list:
        out = []
        for strategy, params, state, bar in warm:
            state.update(bar)
            out.append(strategy.decide(state, bar, params))
        return out

    live_result = live_once()
    assert live_result == warm_once(), "window replay and warm state decided differently"
    live = _time_per_call(live_once, 5)
    warm_time = _time_per_call(lambda: [s.update(b) for _, _, s, b in warm], 5)  # noqa: E731
    return {"decisions": len(live_result), "live_window_s": live, "warm_update_s": warm_time,
            "window": max(window_size(s, p) for s, p in configs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=50_000, help="candles TA-Lib recomputes per update")
    parser.add_argument("--updates", type=int, default=20_000, help="incremental updates timed per indicator")
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, TA-Lib {talib.__version__}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"\nper-update cost (incremental) vs recomputing over {args.window:,} candles with TA-Lib")
    print(f"{'indicator':<16}{'incremental':>14}{'TA-Lib window':>16}{'ratio':>10}")
    worst = 0.0
    for name, incremental, baseline in bench_updates(args.window, args.updates):
        ratio = incremental / baseline
        worst = max(worst, ratio)
        print(f"{name:<16}{incremental * 1e6:>11.2f} us{baseline * 1e6:>13.1f} us{ratio:>10.4f}")
    print(f"worst ratio {worst:.4f} (target <= 0.05): {'OK' if worst <= 0.05 else 'MISSED'}")
    result = bench_strategies(args.symbols)
    print(f"\nall {len(STRATEGIES)} strategies x {args.symbols} symbols on one closed candle each "
          f"({result['decisions']} decisions, default params)")
    print(f"  live runner (replays its {result['window']}-candle window): {result['live_window_s'] * 1e3:.1f} ms "
          f"(target <= 50 ms): {'OK' if result['live_window_s'] <= 0.05 else 'MISSED'}")
    print(f"  warm in-memory state (one update each):   {result['warm_update_s'] * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
