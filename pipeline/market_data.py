"""Plain market-data records passed between the feed (I/O) and the pure pipeline.

Prices and quantities are Decimals parsed from the exchange's strings, so no float
rounding ever reaches a stored candle. Times are integer epoch milliseconds, as on
the wire.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str          # upper case, e.g. "BTCUSDT"
    trade_id: int        # exchange trade id: unique per symbol, used to drop duplicates
    price: Decimal
    qty: Decimal
    ts_ms: int           # trade time (epoch ms)


@dataclass(frozen=True, slots=True)
class Kline:
    symbol: str
    timeframe: str       # "1m", "5m", "15m", "1h"
    open_ms: int         # candle open time (epoch ms)
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    closed: bool         # False while the candle is still forming
