"""Pure aggregation: trades -> partial candles, merge, rollup, dedupe, gaps."""
from __future__ import annotations

import random
from decimal import Decimal

from pipeline.aggregation import (
    MINUTE_MS,
    PartialCandle,
    TradeDeduper,
    candle_merge,
    candles_from_trades,
    candles_rollup,
    expected_buckets,
    gaps_find,
    kline_to_partial,
)
from pipeline.market_data import Kline, Trade

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000  # an hour boundary


def trade(i: int, ts: int, price: str, qty: str = "1", symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol=symbol, trade_id=i, price=Decimal(price), qty=Decimal(qty), ts_ms=ts)


def reference_candle(trades: list[Trade]) -> tuple:
    ordered = sorted(trades, key=lambda t: (t.ts_ms, t.trade_id))
    return (ordered[0].price, max(t.price for t in trades), min(t.price for t in trades), ordered[-1].price,
            sum((t.qty for t in trades), Decimal(0)), len(trades))


def ohlcv(c: PartialCandle) -> tuple:
    return c.open, c.high, c.low, c.close, c.volume, c.trades


def random_trades(n: int, seed: int = 7) -> list[Trade]:
    rng = random.Random(seed)
    out, price, ts = [], Decimal("100.00"), T0
    for i in range(1, n + 1):
        ts += rng.randint(0, 4000)
        price += Decimal(rng.randint(-50, 50)) / 100
        out.append(trade(i, ts, str(price), str(Decimal(rng.randint(1, 500)) / 100)))
    return out


def test_it_aggregates_trades_into_1m_candles_whatever_their_order():
    trades = random_trades(400)
    shuffled = trades[:]
    random.Random(1).shuffle(shuffled)
    clean = {c.open_ms: c for c in candles_from_trades(trades)}
    messy = {c.open_ms: c for c in candles_from_trades(shuffled)}
    assert clean.keys() == messy.keys()
    for open_ms, c in clean.items():
        members = [t for t in trades if open_ms <= t.ts_ms < open_ms + MINUTE_MS]
        assert ohlcv(c) == reference_candle(members)
        assert ohlcv(messy[open_ms]) == ohlcv(c)


def test_it_merges_partials_of_any_split_into_the_whole():
    trades = [t for t in random_trades(300) if t.ts_ms < T0 + MINUTE_MS] or random_trades(3)
    whole = candles_from_trades(trades)[0]
    rng = random.Random(3)
    for _ in range(20):
        shuffled = trades[:]
        rng.shuffle(shuffled)
        cut = rng.randint(1, len(shuffled) - 1)
        left, right = candles_from_trades(shuffled[:cut])[0], candles_from_trades(shuffled[cut:])[0]
        assert ohlcv(candle_merge(left, right)) == ohlcv(whole)
        assert ohlcv(candle_merge(right, left)) == ohlcv(whole)


def test_it_breaks_equal_timestamps_by_trade_id():
    trades = [trade(5, T0 + 10, "3"), trade(4, T0 + 10, "1"), trade(6, T0 + 10, "2")]
    c = candles_from_trades(trades)[0]
    assert (c.open, c.close) == (Decimal("1"), Decimal("2"))


def test_it_rolls_minutes_up_and_closes_buckets_the_cutoff_passed():
    trades = random_trades(600)
    minutes = candles_from_trades(trades)
    cutoff = T0 + 10 * MINUTE_MS
    fives = {c.open_ms: c for c in candles_rollup(minutes, "5m", cutoffs={"BTCUSDT": cutoff})}
    for open_ms, c in fives.items():
        members = [t for t in trades if open_ms <= t.ts_ms < open_ms + 5 * MINUTE_MS]
        assert ohlcv(c) == reference_candle(members)
        assert c.closed == (open_ms + 5 * MINUTE_MS <= cutoff)
    assert fives[T0].closed and not fives[T0 + 10 * MINUTE_MS].closed


def test_it_drops_duplicates_within_and_across_batches():
    deduper = TradeDeduper()
    batch = [trade(1, T0, "1"), trade(2, T0 + 1, "1"), trade(1, T0, "1")]
    result = deduper.fresh(batch)
    assert [t.trade_id for t in result.fresh] == [1, 2] and result.duplicates == 1 and result.late == 0
    deduper.remember(result)
    result = deduper.fresh([trade(2, T0 + 1, "1"), trade(3, T0 + 2, "1")])
    assert [t.trade_id for t in result.fresh] == [3] and result.duplicates == 1


def test_it_does_not_remember_trades_until_told_they_were_stored():
    deduper = TradeDeduper()
    batch = [trade(1, T0, "1")]
    deduper.fresh(batch)
    result = deduper.fresh(batch)
    assert len(result.fresh) == 1 and result.duplicates == 0


def test_it_accepts_a_reused_trade_id_at_a_different_time():
    # An exchange (or our simulator) restarting its id counter must not lose trades.
    deduper = TradeDeduper()
    deduper.remember(deduper.fresh([trade(1, T0, "1")]))
    result = deduper.fresh([trade(1, T0 + 5_000, "1")])
    assert len(result.fresh) == 1 and result.duplicates == 0


def test_it_refuses_trades_older_than_the_horizon_and_forgets_old_minutes():
    deduper = TradeDeduper(horizon_ms=5 * MINUTE_MS)
    deduper.remember(deduper.fresh([trade(1, T0, "1"), trade(2, T0 + 20 * MINUTE_MS, "1")]))
    result = deduper.fresh([trade(3, T0 + 10 * MINUTE_MS, "1"), trade(4, T0 + 19 * MINUTE_MS, "1")])
    assert [t.trade_id for t in result.fresh] == [4] and result.late == 1
    assert T0 not in deduper._minutes["BTCUSDT"]


def test_it_treats_trades_at_or_below_the_seeded_floor_as_stored():
    deduper = TradeDeduper()
    deduper.seed("BTCUSDT", (T0 + 100, 7))
    result = deduper.fresh([trade(7, T0 + 100, "1"), trade(6, T0 + 50, "1"), trade(8, T0 + 101, "1")])
    assert [t.trade_id for t in result.fresh] == [8] and result.duplicates == 2


def test_it_makes_a_closed_kline_sort_around_every_trade():
    k = Kline("BTCUSDT", "1m", T0, Decimal(1), Decimal(3), Decimal(1), Decimal(2), Decimal(9), 4, True)
    row = kline_to_partial(k)
    first_trade = candles_from_trades([trade(1, T0, "5")])[0]
    last_trade = candles_from_trades([trade(2, T0 + MINUTE_MS - 1, "5")])[0]
    merged = candle_merge(candle_merge(row, first_trade), last_trade)
    assert (merged.open, merged.close) == (Decimal(1), Decimal(2))


def test_it_finds_gaps_as_merged_ranges():
    expected = [0, 60, 120, 180, 240, 300]
    assert gaps_find([0, 240], expected, 60) == [(60, 240), (300, 360)]
    assert gaps_find(expected, expected, 60) == []


def test_it_expects_only_finished_buckets_inside_trading_intervals():
    size = MINUTE_MS
    intervals = [(T0 + 2 * size, T0 + 4 * size), (T0 + 10 * size, T0 + 20 * size)]
    got = expected_buckets(intervals, size, T0, T0 + 12 * size + 30_000)
    assert got == [T0 + 2 * size, T0 + 3 * size, T0 + 10 * size, T0 + 11 * size]
