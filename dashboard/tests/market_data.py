"""Candles for the browser tests, written straight to the candle table (the chart
reads them through the real market API). A deterministic walk, so a test can say
where the price is."""
from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from django.utils import timezone

from pipeline.latest_prices import latest_price_forget
from pipeline.models import Candle
from signals.models import Instrument

STEP = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


def candle_rows(*, symbol: str, timeframe: str = "1m", count: int = 120, last_close: float = 100.0,
                end: dt.datetime | None = None) -> list[Candle]:
    """`count` consecutive candles ending with the one open at `end` (default: the
    current period), whose last close is `last_close`. Not saved."""
    instrument = Instrument.objects.get(symbol=symbol)
    step = STEP[timeframe]
    now = end or timezone.now()
    last_open = dt.datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=dt.timezone.utc)
    rows = []
    for i in range(count):
        k = count - 1 - i  # candles before the last one
        mid = last_close * (1 + 0.01 * math.sin(k / 7) + 0.004 * math.cos(k / 2.3))
        close = last_close if k == 0 else mid
        open_ = mid * (1 - 0.002 * math.sin(k))
        high = max(open_, close) * 1.002
        low = min(open_, close) * 0.998
        open_time = last_open - dt.timedelta(seconds=step * k)
        ms = int(open_time.timestamp() * 1000)
        rows.append(Candle(
            instrument=instrument, timeframe=timeframe, open_time=open_time,
            open=Decimal(f"{open_:.4f}"), high=Decimal(f"{high:.4f}"), low=Decimal(f"{low:.4f}"),
            close=Decimal(f"{close:.4f}"), volume=Decimal(f"{10 + 5 * (1 + math.sin(k / 3)):.3f}"), trades=10,
            first_trade_ms=ms, first_trade_id=1, last_trade_ms=ms + step * 1000 - 1, last_trade_id=2,
            closed=k > 0, updated_at=timezone.now(),
        ))
    return rows


def candles_seed(**kwargs) -> list[Candle]:
    """Store the candles; the symbol's cached latest price (Redis, shared by every
    test of a run) is dropped so the price read falls back to these candles."""
    latest_price_forget(symbol=kwargs["symbol"])
    return Candle.objects.bulk_create(candle_rows(**kwargs))
