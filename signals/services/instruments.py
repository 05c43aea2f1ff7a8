"""Instruments: editable reference data (symbols, markets, tick sizes)."""
from __future__ import annotations

from decimal import Decimal

from ..models import Instrument


def instrument_upsert(*, symbol: str, market: str, base: str, quote: str, tick_size: str = "0.01") -> Instrument:
    """Create or update an instrument by symbol (instruments are editable)."""
    instrument, _ = Instrument.objects.update_or_create(
        symbol=symbol.upper(),
        defaults={"market": market, "base": base, "quote": quote, "tick_size": Decimal(tick_size)},
    )
    return instrument


DEMO_INSTRUMENTS = (
    ("BTCUSDT", "crypto", "BTC", "USDT", "0.01"),
    ("ETHUSDT", "crypto", "ETH", "USDT", "0.01"),
    ("SOLUSDT", "crypto", "SOL", "USDT", "0.001"),
    ("USDCOP", "forex", "USD", "COP", "0.01"),
)


def demo_instruments_seed() -> list[Instrument]:
    """Ensure the demo instruments exist; safe to run twice."""
    return [
        Instrument.objects.get_or_create(
            symbol=s, defaults={"market": m, "base": b, "quote": q, "tick_size": Decimal(t)}
        )[0]
        for s, m, b, q, t in DEMO_INSTRUMENTS
    ]
