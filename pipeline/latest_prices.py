"""Latest traded price per symbol, kept in Redis with its timestamp.

Why Redis: /api/market/latest/ is read by every web process and must not scan
candles on each call; the feed writes it several times a second. Why a Lua
compare-and-set: batches can arrive out of order (a REST poll, a late trade), and
an older price must never overwrite a newer one. Losing Redis loses nothing that
matters: readers fall back to the newest stored candle (pipeline.selectors).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import redis

from .redis_store import redis_client, redis_key

logger = logging.getLogger(__name__)

# KEYS[i] gets ARGV[2i-1] (ts ms) and ARGV[2i] (the "ts|price" value) only when its
# stored ts is older. Returns how many keys moved forward.
_SET_IF_NEWER = """
local moved = 0
for i, key in ipairs(KEYS) do
  local ts = tonumber(ARGV[2 * i - 1])
  local current = redis.call('GET', key)
  local current_ts = -1
  if current then
    current_ts = tonumber(string.match(current, '^(%-?%d+)|'))
  end
  if ts > current_ts then
    redis.call('SET', key, ARGV[2 * i])
    moved = moved + 1
  end
end
return moved
"""



@dataclass(frozen=True)
class LatestPrice:
    symbol: str
    price: Decimal
    ts_ms: int


def _key(symbol: str) -> str:
    return redis_key(f"market:latest:{symbol.upper()}")


def _redis():
    client = redis_client()
    # register_script only hashes the text; EVALSHA loads it on first use per server.
    return client, client.register_script(_SET_IF_NEWER)


def latest_prices_set(*, prices: dict[str, tuple[Decimal, int]]) -> int:
    """Store {symbol: (price, ts_ms)} where newer than what is stored. Returns how
    many moved forward; 0 (and a warning) when Redis is unavailable, because a
    cache outage must not stop candles being written."""
    if not prices:
        return 0
    keys, args = [], []
    for symbol, (price, ts_ms) in prices.items():
        keys.append(_key(symbol))
        args.extend([int(ts_ms), f"{int(ts_ms)}|{price}"])
    try:
        _, script = _redis()
        return int(script(keys=keys, args=args))
    except redis.RedisError as exc:
        logger.warning("latest price cache unavailable: %s", exc)
        return 0


def latest_price_get(*, symbol: str) -> LatestPrice | None:
    """The cached latest price, or None when unknown or Redis is unavailable."""
    try:
        client, _ = _redis()
        raw = client.get(_key(symbol))
    except redis.RedisError as exc:
        logger.warning("latest price cache unavailable: %s", exc)
        return None
    if raw is None:
        return None
    ts_text, _, price_text = raw.decode().partition("|")
    return LatestPrice(symbol=symbol.upper(), price=Decimal(price_text), ts_ms=int(ts_text))


def latest_price_forget(*, symbol: str) -> None:
    """Drop a symbol's cached price (tests, and operators resetting a symbol)."""
    client, _ = _redis()
    client.delete(_key(symbol))
