"""Deterministic trade tapes for the exchange simulator.

Why deterministic in *time* rather than a walk advanced by a timer: the stream and
the REST endpoint must tell the same story. A client that loses its connection and
backfills from REST has to get candles built from exactly the trades the stream
would have sent. So every source answers "which trades happened during minute m?"
as a pure function of (seed, symbol, m), and both the stream and /api/v3/klines are
computed from that answer. A restart with the same seed reproduces the same past.

The random walk is hierarchical so any minute can be computed without replaying
history from the beginning: a mean-reverting daily level (cheap: one draw per day
since 2020), a Brownian bridge of minute opens between consecutive daily levels
(1,440 draws per day, cached), and a bridge of trade prices between consecutive
minute opens (one seeded generator per minute, cached).

Prices and quantities are integers in units of 10**-exp, so aggregation is exact
integer arithmetic; they become Binance's 8-decimal strings only on the wire.
"""
from __future__ import annotations

import bisect
import csv
import math
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

from pipeline.aggregation import MINUTE_MS

DAY_MINUTES = 1_440
# Trade ids are minute * TRADE_ID_STRIDE + index: monotonic like the exchange's.
TRADE_ID_STRIDE = 100_000
MAX_TRADES_PER_SECOND = 1_000
_WALK_ORIGIN_DAY = 18_262  # 2020-01-01, days since the epoch


@dataclass(frozen=True, slots=True)
class SimTrade:
    trade_id: int
    ts_ms: int
    price: int          # units of 10**-price_exp
    qty: int            # units of 10**-qty_exp
    buyer_maker: bool


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    base_price: float
    price_exp: int      # price tick = 10**-price_exp
    qty_exp: int
    mean_qty: float
    daily_vol: float    # standard deviation of the daily log move


PROFILES: dict[str, SymbolProfile] = {
    "BTCUSDT": SymbolProfile(60_000.0, 2, 5, 0.05, 0.03),
    "ETHUSDT": SymbolProfile(3_000.0, 2, 4, 0.8, 0.035),
    "SOLUSDT": SymbolProfile(150.0, 3, 3, 12.0, 0.045),
    "USDCOP": SymbolProfile(4_000.0, 2, 0, 25_000.0, 0.006),
}
_DEFAULT_PROFILE = SymbolProfile(100.0, 2, 3, 10.0, 0.03)


def units_to_str(units: int, exp: int) -> str:
    """Integer units -> Binance's fixed 8-decimal string ("60000.01000000")."""
    return f"{Decimal(units).scaleb(-exp):.8f}"


class TradeSource(Protocol):
    symbols: list[str]

    def profile(self, symbol: str) -> SymbolProfile: ...

    def minute_trades(self, symbol: str, minute: int) -> list[SimTrade]:
        """Trades of epoch minute `minute` (ts // 60000), sorted by time then id."""
        ...


class _MinuteCache:
    """A small LRU of computed minutes: the stream asks for the same minute every tick."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._data: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._data[key] = value
        if len(self._data) > self.size:
            self._data.popitem(last=False)


class RandomWalk:
    """Seeded random walk per symbol (see module docstring)."""

    def __init__(self, symbols: list[str], *, seed: int = 42, trades_per_second: float = 2.0):
        if not symbols:
            raise ValueError("at least one symbol is required")
        if not 0 < trades_per_second <= MAX_TRADES_PER_SECOND:
            raise ValueError(f"trades per second must be in (0, {MAX_TRADES_PER_SECOND}]")
        self.symbols = [s.upper() for s in symbols]
        self.seed = seed
        self.trades_per_second = trades_per_second
        self._daily: dict[str, list[float]] = {s: [0.0] for s in self.symbols}
        self._days = _MinuteCache(64)
        self._minutes = _MinuteCache()
        # REST requests compute klines in a worker thread while the stream reads the
        # same caches on the event loop.
        self._lock = threading.Lock()

    def profile(self, symbol: str) -> SymbolProfile:
        return PROFILES.get(symbol, _DEFAULT_PROFILE)

    def _rng(self, kind: str, symbol: str, index: int) -> random.Random:
        # String seeds are hashed with SHA-512 by random.seed: stable across runs
        # and Python processes (unlike hash()).
        return random.Random(f"{self.seed}:{symbol}:{kind}:{index}")

    def _daily_level(self, symbol: str, day: int) -> float:
        """Log-deviation from the base price at 00:00 UTC of `day` (mean-reverting)."""
        levels = self._daily[symbol]
        index = max(0, day - _WALK_ORIGIN_DAY)
        vol = self.profile(symbol).daily_vol
        while len(levels) <= index:
            step = len(levels) - 1
            z = self._rng("d", symbol, step).gauss(0.0, 1.0)
            # Ornstein-Uhlenbeck with k=0.05: levels stay within a few daily moves
            # of the base price instead of drifting away over the years.
            levels.append(levels[-1] * 0.95 + vol * z)
        return levels[index]

    def _minute_opens(self, symbol: str, day: int) -> list[float]:
        """Log prices at each minute boundary of `day` (1,441 values)."""
        key = (symbol, day)
        cached = self._days.get(key)
        if cached is not None:
            return cached
        start = self._daily_level(symbol, day)
        end = self._daily_level(symbol, day + 1)
        rng = self._rng("m", symbol, day)
        sigma = self.profile(symbol).daily_vol / math.sqrt(DAY_MINUTES)
        walk = [0.0]
        for _ in range(DAY_MINUTES):
            walk.append(walk[-1] + sigma * rng.gauss(0.0, 1.0))
        base = math.log(self.profile(symbol).base_price)
        drift = walk[-1] - (end - start)
        opens = [base + start + walk[i] - drift * i / DAY_MINUTES for i in range(DAY_MINUTES + 1)]
        self._days.put(key, opens)
        return opens

    def minute_trades(self, symbol: str, minute: int) -> list[SimTrade]:
        with self._lock:
            key = (symbol, minute)
            cached = self._minutes.get(key)
            if cached is None:
                cached = self._generate(symbol, minute)
                self._minutes.put(key, cached)
            return cached

    def _generate(self, symbol: str, minute: int) -> list[SimTrade]:
        profile = self.profile(symbol)
        day, index = divmod(minute, DAY_MINUTES)
        opens = self._minute_opens(symbol, day)
        log_open, log_next = opens[index], opens[index + 1]
        rng = self._rng("t", symbol, minute)
        mean = self.trades_per_second * 60
        count = min(TRADE_ID_STRIDE - 1, max(1, round(rng.gauss(mean, math.sqrt(mean)))))
        offsets = sorted(rng.randrange(MINUTE_MS) for _ in range(count))
        sigma = profile.daily_vol / math.sqrt(DAY_MINUTES) / math.sqrt(count)
        walk = [0.0]
        for _ in range(count):
            walk.append(walk[-1] + sigma * rng.gauss(0.0, 1.0))
        tick = 10.0 ** profile.price_exp
        qty_unit = 10.0 ** profile.qty_exp
        start_ms = minute * MINUTE_MS
        trades = []
        for i in range(count):
            frac = i / count
            log_price = log_open + frac * (log_next - log_open) + walk[i] - frac * walk[-1]
            qty = max(1, round(rng.expovariate(1.0 / profile.mean_qty) * qty_unit))
            trades.append(SimTrade(
                trade_id=minute * TRADE_ID_STRIDE + i,
                ts_ms=start_ms + offsets[i],
                price=max(1, round(math.exp(log_price) * tick)),
                qty=qty,
                buyer_maker=rng.random() < 0.5,
            ))
        return trades


class CsvError(ValueError):
    """The replay file is unusable; the message says which line and why."""


class CsvReplay:
    """Replays trades from a CSV file in a loop, starting at `origin_ms`.

    Columns (header required): `symbol,price,qty` and optionally `time` (epoch ms or
    ISO 8601). Without times, trades are spaced 1/trades_per_second apart. The file
    repeats forever with its own rhythm, so any minute after the origin (and before
    it, by the same rule) is a pure function of the file.
    """

    def __init__(self, path: str | Path, *, origin_ms: int, trades_per_second: float = 2.0):
        if trades_per_second <= 0:
            raise ValueError("trades per second must be positive")
        self.origin_ms = origin_ms - origin_ms % MINUTE_MS
        rows = self._read(Path(path))
        self.symbols = sorted(rows)
        self._profiles: dict[str, SymbolProfile] = {}
        self._tapes: dict[str, tuple[list[int], list[tuple[int, int]], int]] = {}
        for symbol, items in rows.items():
            price_exp = max(-p.as_tuple().exponent for _, p, _ in items)
            qty_exp = max(-q.as_tuple().exponent for _, _, q in items)
            price_exp, qty_exp = max(price_exp, 0), max(qty_exp, 0)
            base = PROFILES.get(symbol, _DEFAULT_PROFILE)
            self._profiles[symbol] = SymbolProfile(float(items[0][1]), price_exp, qty_exp,
                                                   base.mean_qty, base.daily_vol)
            times = [t for t, _, _ in items]
            if any(t is None for t in times):
                step = 1000.0 / trades_per_second
                offsets = [round(i * step) for i in range(len(items))]
                period = round(len(items) * step)
            else:
                first = min(times)
                offsets = [t - first for t in times]
                gap = (offsets[-1] // max(1, len(offsets) - 1)) if len(offsets) > 1 else 1000
                period = offsets[-1] + max(1, gap)
            order = sorted(range(len(items)), key=lambda i: offsets[i])
            self._tapes[symbol] = (
                [offsets[i] for i in order],
                [(int(items[i][1].scaleb(price_exp)), int(items[i][2].scaleb(qty_exp))) for i in order],
                max(period, 1),
            )

    @staticmethod
    def _read(path: Path) -> dict[str, list[tuple[int | None, Decimal, Decimal]]]:
        if not path.is_file():
            raise CsvError(f"{path}: no such file")
        rows: dict[str, list[tuple[int | None, Decimal, Decimal]]] = {}
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"symbol", "price", "qty"} - set(reader.fieldnames or [])
            if missing:
                raise CsvError(f"{path}: header must contain symbol,price,qty (missing {', '.join(sorted(missing))})")
            for line, row in enumerate(reader, start=2):
                try:
                    price, qty = Decimal(row["price"]), Decimal(row["qty"])
                except (InvalidOperation, TypeError):
                    raise CsvError(f"{path}:{line}: price and qty must be decimals") from None
                if not price.is_finite() or price <= 0 or not qty.is_finite() or qty <= 0:
                    raise CsvError(f"{path}:{line}: price and qty must be positive")
                symbol = (row["symbol"] or "").strip().upper()
                if not symbol.isalnum():
                    raise CsvError(f"{path}:{line}: bad symbol {row['symbol']!r}")
                rows.setdefault(symbol, []).append((_parse_time(row.get("time"), path, line), price, qty))
        if not rows:
            raise CsvError(f"{path}: no trades")
        return rows

    def profile(self, symbol: str) -> SymbolProfile:
        return self._profiles.get(symbol, _DEFAULT_PROFILE)

    def minute_trades(self, symbol: str, minute: int) -> list[SimTrade]:
        tape = self._tapes.get(symbol)
        if tape is None:
            return []
        offsets, values, period = tape
        start, end = minute * MINUTE_MS, (minute + 1) * MINUTE_MS
        trades = []
        cycle = (start - self.origin_ms) // period
        while self.origin_ms + cycle * period < end:
            cycle_start = self.origin_ms + cycle * period
            lo = bisect.bisect_left(offsets, start - cycle_start)
            hi = bisect.bisect_left(offsets, end - cycle_start)
            for i in range(lo, hi):
                price, qty = values[i]
                trades.append(SimTrade(
                    # Ids keep growing across cycles; offset keeps them positive
                    # for cycles before the origin too.
                    trade_id=(cycle + 1_000_000) * len(offsets) + i,
                    ts_ms=cycle_start + offsets[i],
                    price=price, qty=qty, buyer_maker=(i % 2 == 0),
                ))
            cycle += 1
        return trades


def _parse_time(value: str | None, path: Path, line: int) -> int | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"{path}:{line}: time must be epoch ms or ISO 8601, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


# --- aggregation (shared by the stream's kline events and REST) -----------------------

@dataclass(frozen=True, slots=True)
class SimKline:
    open_ms: int
    close_ms: int
    first_id: int
    last_id: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int     # units of 10**-(price_exp + qty_exp)
    trades: int
    taker_buy_volume: int
    taker_buy_quote: int


def kline_aggregate(trades: list[SimTrade], *, open_ms: int, interval_ms: int,
                    previous_close: int) -> SimKline:
    """OHLCV of `trades` (already restricted to the interval). An interval without
    trades is flat at the previous close, as on the exchange."""
    if not trades:
        return SimKline(open_ms, open_ms + interval_ms - 1, -1, -1, previous_close, previous_close,
                        previous_close, previous_close, 0, 0, 0, 0, 0)
    high = low = trades[0].price
    volume = quote = buy_volume = buy_quote = 0
    for trade in trades:
        if trade.price > high:
            high = trade.price
        elif trade.price < low:
            low = trade.price
        volume += trade.qty
        notional = trade.price * trade.qty
        quote += notional
        # The taker bought when the buyer was not the maker.
        if not trade.buyer_maker:
            buy_volume += trade.qty
            buy_quote += notional
    return SimKline(open_ms, open_ms + interval_ms - 1, trades[0].trade_id, trades[-1].trade_id,
                    trades[0].price, high, low, trades[-1].price, volume, quote, len(trades),
                    buy_volume, buy_quote)


class TapeReader:
    """Reads a TradeSource by time range and interval; shared by stream and REST."""

    def __init__(self, source: TradeSource):
        self.source = source

    def trades_between(self, symbol: str, after_ms: int, upto_ms: int) -> list[SimTrade]:
        """Trades with after_ms < ts <= upto_ms, in time order."""
        if upto_ms <= after_ms:
            return []
        out: list[SimTrade] = []
        for minute in range((after_ms + 1) // MINUTE_MS, upto_ms // MINUTE_MS + 1):
            trades = self.source.minute_trades(symbol, minute)
            if not trades:
                continue
            if trades[0].ts_ms > after_ms and trades[-1].ts_ms <= upto_ms:
                out.extend(trades)
            else:
                out.extend(t for t in trades if after_ms < t.ts_ms <= upto_ms)
        return out

    def _close_before(self, symbol: str, ms: int) -> int:
        minute = ms // MINUTE_MS - 1
        for back in range(DAY_MINUTES):
            trades = self.source.minute_trades(symbol, minute - back)
            if trades:
                return trades[-1].price
        return 1

    def kline(self, symbol: str, *, open_ms: int, interval_ms: int, upto_ms: int) -> SimKline:
        """The kline opening at open_ms, built from trades up to upto_ms (inclusive)."""
        end = min(open_ms + interval_ms - 1, upto_ms)
        trades = self.trades_between(symbol, open_ms - 1, end)
        previous = trades[0].price if trades else self._close_before(symbol, open_ms)
        return kline_aggregate(trades, open_ms=open_ms, interval_ms=interval_ms, previous_close=previous)
