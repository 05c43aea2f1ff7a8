"""The feed's doorbell: a committed batch that reaches a new minute (or brings a
closed exchange kline) rings the strategy runner for exactly those symbols."""
from __future__ import annotations

import threading
from decimal import Decimal

from pipeline.candle_close_watch import CandleCloseWatch
from pipeline.market_data import Kline, Trade

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 60_000


def _trade(symbol: str, offset_ms: int, trade_id: int = 1) -> Trade:
    return Trade(symbol, trade_id, Decimal("100"), Decimal("1"), T0 + offset_ms)


def test_it_names_the_symbols_whose_minute_rolled_over():
    watch = CandleCloseWatch(enqueue=lambda symbols: None)
    assert watch.closed_symbols([_trade("BTCUSDT", 1000), _trade("ETHUSDT", 2000)]) == []
    assert watch.closed_symbols([_trade("BTCUSDT", 59_000)]) == []
    assert watch.closed_symbols([_trade("BTCUSDT", 61_000), _trade("ETHUSDT", 30_000)]) == ["BTCUSDT"]
    # A late trade of an earlier minute closes nothing new.
    assert watch.closed_symbols([_trade("BTCUSDT", 5_000)]) == []
    kline = Kline("SOLUSDT", "1m", T0, *(Decimal("1"),) * 5, trades=3, closed=True)
    forming = Kline("ETHUSDT", "1m", T0, *(Decimal("1"),) * 5, trades=3, closed=False)
    assert watch.closed_symbols([_trade("ETHUSDT", 125_000)], [kline, forming]) == ["ETHUSDT", "SOLUSDT"]
    watch.close()


def test_it_rings_in_the_background_and_survives_a_broker_failure():
    rung: list[list[str]] = []
    done = threading.Event()

    def enqueue(symbols):
        rung.append(symbols)
        if len(rung) == 1:
            raise ConnectionError("broker down")
        done.set()

    watch = CandleCloseWatch(enqueue=enqueue)
    watch.after_batch([_trade("BTCUSDT", 0)])
    assert watch.after_batch([_trade("BTCUSDT", 60_000)]) == ["BTCUSDT"]
    assert watch.after_batch([_trade("BTCUSDT", 120_000)]) == ["BTCUSDT"]
    assert done.wait(timeout=30)
    watch.close()
    assert rung == [["BTCUSDT"], ["BTCUSDT"]]
