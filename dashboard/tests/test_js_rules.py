"""The dashboard's pure browser-side rules, run in Chromium (the modules as served,
imported by the page): label layout, the trader's figures, filters for live
arrivals, overlays and the RSI/MACD panes against pipeline.indicators, retry
hints, health freshness."""
from __future__ import annotations

import json
import math

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _run(page, server, module: str, body: str):
    page.goto(f"{server.http_url}/static/dashboard/js/{module}")  # same origin for the import
    return page.evaluate(f"""async () => {{
        const m = await import('/static/dashboard/js/{module}');
        {body}
    }}""")


def test_it_spreads_level_labels_so_none_overlap_or_leave_the_plot(server, page):
    out = _run(page, server, "levels.js", """
        return {
            apart: m.spreadLabels([50, 100, 150], 15, 0, 200),
            crowded: m.spreadLabels([100, 101, 99, 100.5], 15, 0, 200, 2),
            top: m.spreadLabels([-40, 3, 5], 15, 10, 200, 2),
            bottom: m.spreadLabels([199, 198], 15, 0, 200, 2),
            tooMany: m.spreadLabels([50, 50, 50, 50], 15, 0, 40, 2),
        };
    """)
    assert out["apart"] == [50, 100, 150]  # room enough: labels stay on their lines
    for name in ("crowded", "top", "bottom"):
        ys = out[name]
        top = 10 if name == "top" else 0
        assert all(top + 7.5 <= y <= 200 - 7.5 for y in ys), (name, ys)
        ordered = sorted(ys)
        assert all(b - a >= 17 - 1e-9 for a, b in zip(ordered, ordered[1:])), (name, ys)
    # Order is kept: a higher line never gets a lower label.
    crowded = out["crowded"]
    assert crowded[2] < crowded[0] < crowded[3] < crowded[1]
    # No room for all: spread evenly over the plot, first to last.
    assert out["tooMany"] == pytest.approx([7.5, 7.5 + 25 / 3, 7.5 + 50 / 3, 32.5])


def test_it_computes_reward_risk_unrealized_r_and_the_stop_in_force(server, page):
    out = _run(page, server, "levels.js", """
        const long = { direction: 'long', entry_price: '100', stop_loss: '90', take_profit: '130' };
        const short = { direction: 'short', entry_price: '100', stop_loss: '110', take_profit: '80' };
        return {
            rrLong: m.rewardRisk(long), rrShort: m.rewardRisk(short),
            urLong: m.unrealizedR(long, '105'), urShort: m.unrealizedR(short, '105'),
            dist: m.distancePct(long, '99'),
            bad: m.rewardRisk({ direction: 'long', entry_price: '100', stop_loss: '100', take_profit: '110' }),
            stop: m.effectiveStop({ ...long, effective_stop: '95' }), stopAbsent: m.effectiveStop(long),
            targets: m.targetsOf({ ...long, targets: [{ price: '110', portion: '0.5' }, { price: '130', portion: '0.5' }],
                                   outcome: { legs: [{ status: 'tp_hit' }, { status: 'open' }] } }),
            single: m.targetsOf(long),
        };
    """)
    assert out["rrLong"] == 3 and out["rrShort"] == 2
    assert out["urLong"] == 0.5 and out["urShort"] == -0.5
    assert math.isclose(out["dist"], -1.0)
    assert out["bad"] is None
    assert out["stop"] == "95" and out["stopAbsent"] == "90"
    assert [(t["price"], t["status"]) for t in out["targets"]] == [("110", "tp_hit"), ("130", "open")]
    assert [(t["price"], t["portion"]) for t in out["single"]] == [("130", 1)]


def test_it_applies_every_filter_to_live_arrivals(server, page):
    out = _run(page, server, "filters.js", """
        const s = { symbol: 'BTCUSDT', market: 'crypto', source: 'manual', direction: 'long', confidence: 70,
                    created_at: '2026-05-01T23:59:59Z', outcome: { status: 'open' } };
        const cases = {
            none: {}, symbol: { symbol: 'ETHUSDT' }, market: { market: 'forex' }, source: { source: 'ema' },
            direction: { direction: 'short' }, outcomeOpen: { outcome: 'open' }, outcomeWon: { outcome: 'tp_hit' },
            conf70: { min_confidence: '70' }, conf71: { min_confidence: '71' },
            sameDay: { date_from: '2026-05-01', date_to: '2026-05-01' }, before: { date_to: '2026-04-30' },
            after: { date_from: '2026-05-02' },
        };
        return Object.fromEntries(Object.entries(cases).map(([k, f]) => [k, m.matchesFilters(s, f)]));
    """)
    assert out == {"none": True, "symbol": False, "market": False, "source": False, "direction": False,
                   "outcomeOpen": True, "outcomeWon": False, "conf70": True, "conf71": False, "sameDay": True,
                   "before": False, "after": False}


def test_it_draws_the_same_indicator_values_as_the_strategies_use(server, page):
    from pipeline.indicators import EMA, SMA, BollingerBands

    closes = [100 + 5 * math.sin(i / 4) + (i % 7) * 0.3 for i in range(80)]
    out = _run(page, server, "overlays.js", f"""
        const closes = {closes};
        return {{ ema: m.ema(closes, 9), sma: m.sma(closes, 20), bb: m.bollinger(closes, 20, 2),
                  lines: m.overlaysFor([{{ strategy: 'ema_crossover', params: {{ fast: 9, slow: 21 }} }},
                                        {{ strategy: 'macd_cross', params: {{ fast: 9, slow: 26, signal: 9 }} }},
                                        {{ strategy: 'rsi_reversal', params: {{}} }}], closes).map(l => l.label) }};
    """)
    ema, sma, bands = EMA(9), SMA(20), BollingerBands(20, 2.0)
    for i, close in enumerate(closes):
        expected_ema, expected_sma, expected_bb = ema.update(close), sma.update(close), bands.update(close)
        for got, want in ((out["ema"][i], expected_ema), (out["sma"][i], expected_sma)):
            assert (got is None) == (want is None), i
            if want is not None:
                assert math.isclose(got, want, rel_tol=1e-9), (i, got, want)
        if expected_bb is not None:
            lower, middle, upper = expected_bb
            assert math.isclose(out["bb"]["lower"][i], lower, rel_tol=1e-9)
            assert math.isclose(out["bb"]["mid"][i], middle, rel_tol=1e-9)
            assert math.isclose(out["bb"]["upper"][i], upper, rel_tol=1e-9)
    # One line per distinct indicator; an oscillator (RSI) has none on the price scale.
    assert out["lines"] == ["EMA 9", "EMA 21", "EMA 26"]


def _same_series(name: str, got: list, want: list) -> int:
    """None exactly where pipeline.indicators has no value yet, else equal within
    1e-9 relative (1e-12 absolute near zero, as pipeline's own TA-Lib test)."""
    assert len(got) == len(want), name
    compared = 0
    for i, (g, w) in enumerate(zip(got, want)):
        assert (g is None) == (w is None), (name, i, g, w)
        if w is not None:
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (name, i, g, w)
            compared += 1
    return compared


def test_it_computes_the_panes_rsi_and_macd_as_pipeline_indicators_does(server, page):
    from backtesting.test import EURUSD, GOOG

    from pipeline.indicators import MACD, RSI

    # Real series (GOOG daily around 100-700, EURUSD hourly around 1.07: MACD values
    # near 1e-4) and a made-up one with a flat stretch (RSI's "no movement" rule),
    # a straight climb (RSI 100) and a gap.
    made_up = [100.0] * 20 + [100.0 + i for i in range(20)] + [150.0, 90.0] + [90 + math.sin(i) for i in range(40)]
    series = {
        "goog": [float(x) for x in GOOG["Close"].iloc[:400]],
        "eurusd": [float(x) for x in EURUSD["Close"].iloc[:400]],
        "made_up": made_up,
    }
    cases = [("rsi", 14), ("rsi", 5), ("macd", (12, 26, 9)), ("macd", (5, 35, 5)), ("macd", (26, 12, 9))]
    out = _run(page, server, "overlays.js", f"""
        const series = {json.dumps(series)};
        const cases = {json.dumps(cases)};
        const result = {{}};
        for (const [name, closes] of Object.entries(series)) {{
            result[name] = cases.map(([kind, p]) => (kind === 'rsi' ? m.rsi(closes, p) : m.macd(closes, ...p)));
        }}
        // Too few candles: nothing at all, never a value from a partial seed.
        result.short = [m.rsi(series.goog.slice(0, 14), 14), m.macd(series.goog.slice(0, 33), 12, 26, 9)];
        result.warmup = [m.rsiWarmup(14), m.macdWarmup(12, 26, 9)];
        return result;
    """)
    for name, closes in series.items():
        for (kind, params), got in zip(cases, out[name]):
            label = f"{name} {kind}{params}"
            if kind == "rsi":
                rsi = RSI(params)
                _same_series(label, got, [rsi.update(x) for x in closes])
            else:
                macd = MACD(*params)
                want = [macd.update(x) for x in closes]
                compared = 0
                for part, key in enumerate(("macd", "signal", "hist")):
                    compared += _same_series(f"{label}.{key}", got[key],
                                             [None if v is None else v[part] for v in want])
                assert compared > len(closes), label  # most candles have all three
    # The warm-up counts the panes announce are where the first value appears.
    rsi14, macd_default = RSI(14), MACD(12, 26, 9)
    first_rsi = next(i for i, x in enumerate(series["goog"]) if rsi14.update(x) is not None)
    first_macd = next(i for i, x in enumerate(series["goog"]) if macd_default.update(x) is not None)
    assert out["warmup"] == [first_rsi + 1, first_macd + 1] == [15, 34]
    assert out["short"][0] == [None] * 14
    assert out["short"][1] == {"macd": [None] * 33, "signal": [None] * 33, "hist": [None] * 33}
    # The made-up series reaches the edge cases it was made for.
    rsi_made_up = out["made_up"][0]
    assert rsi_made_up[19] == 0 and rsi_made_up[39] == 100


def test_it_formats_oscillator_readings_for_the_legend(server, page):
    out = _run(page, server, "oscillator_panes.js", """
        return [56.2345, 100, 0, -63.528, 0.000123456, -0.0000712, 1234.5, 7.5, null, NaN].map(m.formatOscillator);
    """)
    assert out == ["56.23", "100.00", "0.00", "-63.53", "0.0001235", "-0.00007120", "1,234.50", "7.500", "—", "—"]


def test_it_waits_the_retry_hint_plus_bounded_jitter(server, page):
    out = _run(page, server, "backoff.js", """
        return [m.retryAfterDelay(2, { random: () => 0 }), m.retryAfterDelay(2, { random: () => 0.999 }),
                m.retryAfterDelay(20, { random: () => 0.999 }), m.retryAfterDelay(0, { random: () => 0.5 })];
    """)
    assert out[0] == 2000 and 2000 < out[1] < 3000
    assert 20000 < out[2] < 25000  # a quarter of a long wait spreads a crowd further
    assert out[3] == 500


def test_it_calls_a_health_reading_stale_or_offline_by_the_rule(server, page):
    out = _run(page, server, "health_rules.js", """
        const f = (receivedAt, now, connected) => m.healthFreshness({ receivedAt, now, maxAgeMs: 60000, connected });
        return [f(0, 1000, true), f(1000, 61000, true), f(1000, 61001, true), f(1000, 2000, false)];
    """)
    assert out == ["none", "fresh", "stale", "disconnected"]


def test_it_picks_a_timeframe_that_reaches_back_to_the_signal(server, page):
    out = _run(page, server, "price_chart.js", """
        const now = 1_800_000_000;
        const offered = ['1m', '5m', '15m', '1h', '4h', '1d'];
        return [m.timeframeCovering(now - 600, '1m', offered, now), m.timeframeCovering(now - 600, '1h', offered, now),
                m.timeframeCovering(now - 6 * 3600, '1m', offered, now),
                m.timeframeCovering(now - 20 * 86400, '1m', offered, now),
                m.timeframeCovering(now - 900 * 86400, '1m', offered, now)];
    """)
    assert out == ["1m", "1h", "5m", "4h", "1d"]


def test_it_reads_what_a_close_code_asks_of_the_client(server, page):
    out = _run(page, server, "frames.js", """
        return [m.closeVerdict(4400, 'market must be one of: crypto, forex'), m.closeVerdict(4409, 'ahead'),
                m.closeVerdict(4503, 'retry_after=7'), m.closeVerdict(4503, 'retry_after=0.5'),
                m.closeVerdict(4503, 'busy'), m.closeVerdict(1006, ''), m.closeVerdict(4500, 'oops')];
    """)
    assert out == [
        {"action": "fatal", "detail": "rejected: market must be one of: crypto, forex"},
        {"action": "resync"},
        {"action": "later", "seconds": 7}, {"action": "later", "seconds": 0.5},
        {"action": "later", "seconds": 5},  # no hint: a sensible default, never at once
        {"action": "retry"}, {"action": "retry"},
    ]
