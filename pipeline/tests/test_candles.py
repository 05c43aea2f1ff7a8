"""Candle persistence on real PostgreSQL: batched upserts, dedupe, ordering, closing,
exchange klines and the latest-price cache."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from pipeline.aggregation import MINUTE_MS
from pipeline.latest_prices import latest_price_forget, latest_price_get, latest_prices_set
from pipeline.models import Candle
from pipeline.services import klines_ingest
from pipeline.tests.feed_fixtures import feed_process  # noqa: F401
from pipeline.market_data import Kline, Trade

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000  # an hour boundary
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "USDCOP")


@pytest.fixture(autouse=True)
def fresh_process(instruments):
    """Every test starts with an empty price cache (and its own FeedProcess)."""
    for symbol in SYMBOLS:
        latest_price_forget(symbol=symbol)


def feed(n: int, *, seed: int = 11, symbols=("BTCUSDT", "ETHUSDT"), start: int = T0, step_ms: int = 1500) -> list[Trade]:
    """A clean in-order trade stream: ids increase per symbol, time moves forward."""
    rng = random.Random(seed)
    ids = {s: 1000 for s in symbols}
    price = {s: Decimal("100.00") for s in symbols}
    out, ts = [], start
    for _ in range(n):
        ts += rng.randint(0, step_ms)
        s = rng.choice(symbols)
        ids[s] += 1
        price[s] = max(Decimal("1"), price[s] + Decimal(rng.randint(-40, 40)) / 100)
        out.append(Trade(s, ids[s], price[s], Decimal(rng.randint(1, 900)) / 1000, ts))
    return out


def batches(trades: list[Trade], size: int) -> list[list[Trade]]:
    return [trades[i:i + size] for i in range(0, len(trades), size)]


def snapshot() -> list[tuple]:
    return list(Candle.objects.order_by("instrument__symbol", "timeframe", "open_time").values_list(
        "instrument__symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume", "trades",
        "closed", "first_trade_ms", "first_trade_id", "last_trade_ms", "last_trade_id"))


def reference(trades: list[Trade], symbol: str, start: int, size: int) -> tuple:
    members = sorted((t for t in trades if t.symbol == symbol and start <= t.ts_ms < start + size),
                     key=lambda t: (t.ts_ms, t.trade_id))
    return (members[0].price, max(t.price for t in members), min(t.price for t in members), members[-1].price,
            sum((t.qty for t in members), Decimal(0)), len(members))


def stored(symbol: str, timeframe: str, start: int) -> tuple:
    from pipeline.aggregation import ms_to_dt

    c = Candle.objects.get(instrument__symbol=symbol, timeframe=timeframe, open_time=ms_to_dt(start))
    return c.open, c.high, c.low, c.close, c.volume, c.trades


@pytest.mark.django_db
def test_it_stores_1m_candles_and_rollups_equal_to_a_direct_computation(feed_process):
    trades = feed(3000)
    for batch in batches(trades, 97):
        feed_process.ingest(batch)
    sizes = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "1h": 60 * MINUTE_MS,
             "4h": 240 * MINUTE_MS, "1d": 1440 * MINUTE_MS}
    checked = 0
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for timeframe, size in sizes.items():
            starts = {t.ts_ms - t.ts_ms % size for t in trades if t.symbol == symbol}
            assert Candle.objects.filter(instrument__symbol=symbol, timeframe=timeframe).count() == len(starts)
            for start in starts:
                assert stored(symbol, timeframe, start) == reference(trades, symbol, start, size)
                checked += 1
    assert checked >= 100


@pytest.mark.django_db
def test_it_gives_the_same_candles_for_duplicate_and_out_of_order_trades(feed_process):
    trades = feed(2500, seed=5)
    for batch in batches(trades, 50):
        feed_process.ingest(batch)
    clean = snapshot()

    Candle.objects.all().delete()
    feed_process.restart()
    rng = random.Random(9)
    # Duplicates (some in the same batch, some many batches later) and local
    # reordering within a few seconds, as a flaky exchange connection delivers them.
    messy = trades + rng.sample(trades, 600)
    messy.sort(key=lambda t: t.ts_ms + rng.randint(0, 20_000))
    stats = [feed_process.ingest(batch) for batch in batches(messy, 37)]
    assert snapshot() == clean
    assert sum(s["accepted"] for s in stats) == len(trades)
    assert sum(s["duplicates"] for s in stats) == 600
    assert sum(s["late"] for s in stats) == 0


@pytest.mark.django_db
def test_it_does_not_count_stored_trades_again_after_a_restart(feed_process):
    trades = feed(400, seed=2)
    feed_process.ingest(trades[:300])
    before = snapshot()
    feed_process.restart()  # a new feed process
    replay = feed_process.ingest(trades[:300])
    assert replay["accepted"] == 0 and replay["duplicates"] == 300
    assert snapshot() == before
    rest = feed_process.ingest(trades[250:])
    assert rest["accepted"] == 100
    Candle.objects.all().delete()
    feed_process.restart()
    feed_process.ingest(trades)
    assert snapshot() != before


@pytest.mark.django_db
def test_it_reports_what_happened_to_a_batch(feed_process):
    good = feed(10, seed=3, symbols=("BTCUSDT",))
    stranger = Trade("NOPEUSDT", 1, Decimal(1), Decimal(1), T0)
    stats = feed_process.ingest([*good, good[0], stranger])
    assert stats == {"received": 12, "accepted": 10, "duplicates": 1, "late": 0, "unknown_symbol": 1,
                     "candles_written": stats["candles_written"]}
    assert stats["candles_written"] >= 4
    assert feed_process.ingest([]) ["received"] == 0


@pytest.mark.django_db
def test_it_closes_candles_once_the_feed_moves_past_them(feed_process):
    def t(i, offset_ms):
        return Trade("BTCUSDT", i, Decimal(100 + i), Decimal(1), T0 + offset_ms)

    feed_process.ingest([t(1, 30_000)])
    assert set(Candle.objects.values_list("timeframe", "closed")) == {("1m", False), ("5m", False),
                                                                      ("15m", False), ("1h", False),
                                                                      ("4h", False), ("1d", False)}
    feed_process.ingest([t(2, 70_000)])
    closed = dict(Candle.objects.filter(open_time__minute=0).values_list("timeframe", "closed"))
    assert closed == {"1m": True, "5m": False, "15m": False, "1h": False, "4h": False, "1d": False}
    feed_process.ingest([t(3, 15 * MINUTE_MS)])
    closed = dict(Candle.objects.filter(open_time__minute=0).values_list("timeframe", "closed"))
    assert closed == {"1m": True, "5m": True, "15m": True, "1h": False, "4h": False, "1d": False}
    # A late trade for a closed minute is still counted, and the minute stays closed.
    feed_process.ingest([t(4, 40_000)])
    first = Candle.objects.get(timeframe="1m", open_time__minute=0)
    assert first.closed and first.trades == 2 and first.close == Decimal(104)


def kline(open_ms: int, *, o="10", h="12", low="9", c="11", v="5", n=3, closed=True, symbol="BTCUSDT", tf="1m"):
    return Kline(symbol, tf, open_ms, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(v), n, closed)


@pytest.mark.django_db
def test_it_takes_closed_exchange_klines_as_final(feed_process):
    feed_process.ingest([Trade("BTCUSDT", 1, Decimal("10.5"), Decimal(1), T0 + 1000)])
    klines_ingest(klines=[kline(T0)])
    row = Candle.objects.get(timeframe="1m")
    assert (row.open, row.high, row.low, row.close, row.volume, row.trades, row.closed, row.source) == (
        Decimal(10), Decimal(12), Decimal(9), Decimal(11), Decimal(5), 3, True, "exchange")
    # Trades the exchange already counted must not be added on top.
    feed_process.ingest([Trade("BTCUSDT", 2, Decimal("50"), Decimal(7), T0 + 2000)])
    row.refresh_from_db()
    assert (row.high, row.volume, row.trades) == (Decimal(12), Decimal(5), 3)
    hour = Candle.objects.get(timeframe="1h")
    assert (hour.open, hour.high, hour.volume, hour.trades, hour.source) == (
        Decimal(10), Decimal(12), Decimal(5), 3, "rollup")


@pytest.mark.django_db
def test_it_lets_an_in_progress_kline_replace_only_a_less_complete_open_candle(feed_process):
    feed_process.ingest([Trade("BTCUSDT", i, Decimal(20), Decimal(1), T0 + i) for i in range(1, 6)])
    assert klines_ingest(klines=[kline(T0, n=2, closed=False)]) == 0
    assert Candle.objects.get(timeframe="1m").trades == 5
    klines_ingest(klines=[kline(T0, n=9, v="9", closed=False)])
    row = Candle.objects.get(timeframe="1m")
    assert (row.trades, row.volume, row.closed, row.source) == (9, Decimal(9), False, "exchange")
    klines_ingest(klines=[kline(T0, n=12, v="12", closed=True)])
    klines_ingest(klines=[kline(T0, n=99, v="99", closed=False)])
    row.refresh_from_db()
    assert (row.trades, row.closed) == (12, True)


@pytest.mark.django_db
def test_it_rolls_exchange_minutes_up_and_closes_finished_buckets():
    klines_ingest(klines=[kline(T0 + i * MINUTE_MS, o=str(10 + i), c=str(11 + i), h="30", low="1")
                          for i in range(15)])
    five = Candle.objects.get(timeframe="5m", open_time__minute=5)
    assert (five.open, five.close, five.volume, five.trades, five.closed) == (
        Decimal(15), Decimal(20), Decimal(25), 15, True)
    quarter = Candle.objects.get(timeframe="15m")
    hour = Candle.objects.get(timeframe="1h")
    assert quarter.closed and not hour.closed and quarter.volume == Decimal(75)


@pytest.mark.django_db
def test_it_rejects_an_unsupported_kline_timeframe():
    with pytest.raises(ValueError, match="Unsupported timeframe '30m'"):
        klines_ingest(klines=[kline(T0, tf="30m")])


@pytest.mark.django_db
def test_it_keeps_the_newest_price_in_redis_whatever_the_arrival_order(feed_process):
    feed_process.ingest([Trade("BTCUSDT", 2, Decimal("101.5"), Decimal(1), T0 + 2000)])
    feed_process.ingest([Trade("BTCUSDT", 1, Decimal("99"), Decimal(1), T0 + 1000)])
    latest = latest_price_get(symbol="BTCUSDT")
    assert (latest.price, latest.ts_ms) == (Decimal("101.5"), T0 + 2000)
    assert latest_prices_set(prices={"BTCUSDT": (Decimal("102"), T0 + 3000)}) == 1
    assert latest_price_get(symbol="btcusdt").price == Decimal("102")


def rollups_match_minutes() -> list[str]:
    """Differences between stored 5m/15m/1h/4h/1d rows and the rollup of stored 1m rows."""
    from pipeline.aggregation import PartialCandle, candles_rollup
    from pipeline.aggregation import dt_to_ms

    minutes = [PartialCandle(s, "1m", dt_to_ms(t), *rest) for s, t, *rest in Candle.objects.filter(timeframe="1m")
               .values_list("instrument__symbol", "open_time", "open", "high", "low", "close", "volume", "trades",
                            "first_trade_ms", "first_trade_id", "last_trade_ms", "last_trade_id")]
    problems = []
    for timeframe in ("5m", "15m", "1h", "4h", "1d"):
        expected = {(c.symbol, c.open_ms): (c.open, c.high, c.low, c.close, c.volume, c.trades)
                    for c in candles_rollup(minutes, timeframe)}
        stored_rows = {(s, dt_to_ms(t)): tuple(rest) for s, t, *rest in Candle.objects.filter(timeframe=timeframe)
                       .values_list("instrument__symbol", "open_time", "open", "high", "low", "close", "volume", "trades")}
        if expected != stored_rows:
            problems.append(timeframe)
    return problems


@pytest.mark.django_db(transaction=True)
def test_it_serializes_writers_of_one_instrument_so_rollups_stay_consistent(feed_process):
    """A backfill and the feed writing the same hour at once: the second writer waits
    for the first to commit, so its rollup sees the first one's 1m rows."""
    import threading

    from django.db import connection, transaction

    from pipeline.candle_sql import instruments_lock

    holding, release, errors = threading.Event(), threading.Event(), []
    done = threading.Event()

    def first_writer():
        try:
            with transaction.atomic():
                instruments_lock(symbols={"BTCUSDT"})
                klines_ingest(klines=[kline(T0 + MINUTE_MS, v="3")])
                holding.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    def second_writer():
        try:
            holding.wait(10)
            feed_process.ingest([Trade("BTCUSDT", 1, Decimal(50), Decimal(2), T0 + 2 * MINUTE_MS + 1000)])
            done.set()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_writer), threading.Thread(target=second_writer)]
    for t in threads:
        t.start()
    assert holding.wait(10)
    assert not done.wait(0.5), "the second writer did not wait for the first one's lock"
    release.set()
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert done.is_set()
    assert rollups_match_minutes() == []
    hour = Candle.objects.get(timeframe="1h")
    assert (hour.volume, hour.trades) == (Decimal(5), 4)
