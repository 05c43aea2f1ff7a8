"""A loopback exchange that speaks Binance's wire protocol, for tests and demos.

`ExchangeSimulator` (server.py) serves WebSocket streams, live SUBSCRIBE requests,
REST klines and fault knobs on one port; `market.py` holds the deterministic price
sources (seeded random walk, CSV replay) both sides of the protocol are fed from.
"""
from .market import CsvReplay, RandomWalk, SimTrade
from .server import ExchangeSimulator  # noqa: E402

__all__ = ["CsvReplay", "ExchangeSimulator", "RandomWalk", "SimTrade"]
