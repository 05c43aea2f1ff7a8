"""4h and 1d candles: rolled up from the 1h rows, equal to a direct computation from
the trades over more than a day, and closed once their time is over."""
from __future__ import annotations

import pytest

from pipeline.aggregation import MINUTE_MS, ms_to_dt
from pipeline.models import Candle
from pipeline.tests.feed_fixtures import feed_process  # noqa: F401

from .test_candles import T0, batches, feed, reference, stored

DAY_MS = 1440 * MINUTE_MS


@pytest.mark.django_db
def test_it_rolls_4h_and_1d_candles_equal_to_the_trades_over_two_days(instruments, feed_process):
    day_start = T0 - T0 % DAY_MS
    # ~1 trade a minute on average for ~34 hours, starting one hour into a UTC day.
    trades = feed(2000, seed=7, start=day_start + 60 * MINUTE_MS, step_ms=2 * MINUTE_MS)
    assert trades[-1].ts_ms - trades[0].ts_ms > DAY_MS
    for batch in batches(trades, 41):
        feed_process.ingest(batch)
    checked = 0
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for timeframe, size in (("4h", 240 * MINUTE_MS), ("1d", DAY_MS)):
            starts = {t.ts_ms - t.ts_ms % size for t in trades if t.symbol == symbol}
            assert Candle.objects.filter(instrument__symbol=symbol, timeframe=timeframe).count() == len(starts)
            for start in starts:
                assert stored(symbol, timeframe, start) == reference(trades, symbol, start, size)
                checked += 1
    assert checked >= 2 * (8 + 2)
    # Every bucket the stream has moved past is closed; the one holding the newest
    # trade is not.
    last = max(t.ts_ms for t in trades if t.symbol == "BTCUSDT")
    for c in Candle.objects.filter(timeframe__in=("4h", "1d"), instrument__symbol="BTCUSDT"):
        size = 240 * MINUTE_MS if c.timeframe == "4h" else DAY_MS
        end = int(c.open_time.timestamp() * 1000) + size
        assert c.closed == (end <= last), (c.timeframe, c.open_time)
    first_day = Candle.objects.get(instrument__symbol="BTCUSDT", timeframe="1d", open_time=ms_to_dt(day_start))
    assert first_day.closed


@pytest.mark.django_db
def test_it_offers_4h_and_1d_candles_on_the_market_api(instruments, feed_process, reader_client):
    trades = feed(600, seed=3, start=T0, step_ms=2 * MINUTE_MS)
    for batch in batches(trades, 50):
        feed_process.ingest(batch)
    for timeframe in ("4h", "1d"):
        response = reader_client.get("/api/market/candles/", {"symbol": "BTCUSDT", "timeframe": timeframe})
        assert response.status_code == 200, response.content
        rows = response.json()["candles"] if isinstance(response.json(), dict) else response.json()
        stored = Candle.objects.filter(instrument__symbol="BTCUSDT", timeframe=timeframe).count()
        assert stored >= 1 and len(rows) == stored
