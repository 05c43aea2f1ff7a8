"""Binance wire protocol: stream names, message parsing and REST kline rows.

Why a separate, pure module: the connector, the REST client, the fallback task and
the exchange simulator must agree byte for byte on the protocol, and parsing is the
place where a hostile or broken feed first touches our code. Everything here takes
text/dicts and returns `pipeline.market_data` records or raises `MalformedMessage`; no I/O.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.market_data import Kline, Trade

# Interval name -> length in milliseconds (the subset both sides support).
INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
}

_STREAM_RE = re.compile(r"^([a-z0-9]{2,30})@(trade|kline_([0-9]+[mh]))$")


class MalformedMessage(ValueError):
    """A frame that is not valid Binance protocol; counted and skipped by the feed."""


@dataclass(frozen=True, slots=True)
class StreamName:
    symbol: str   # upper case
    kind: str     # "trade" | "kline"
    interval: str | None = None

    def __str__(self) -> str:
        suffix = "trade" if self.kind == "trade" else f"kline_{self.interval}"
        return f"{self.symbol.lower()}@{suffix}"


def stream_parse(name: str) -> StreamName:
    """Parse `btcusdt@trade` / `btcusdt@kline_1m`; raises ValueError otherwise."""
    match = _STREAM_RE.match(name)
    if not match:
        raise ValueError(f"unsupported stream name {name!r}")
    symbol, kind, interval = match.group(1).upper(), match.group(2), match.group(3)
    if kind == "trade":
        return StreamName(symbol, "trade")
    if interval not in INTERVAL_MS:
        raise ValueError(f"unsupported kline interval in {name!r}")
    return StreamName(symbol, "kline", interval)


def streams_for_symbol(symbol: str, *, kline_interval: str = "1m") -> list[str]:
    """The streams the feed needs for one instrument."""
    return [f"{symbol.lower()}@trade", f"{symbol.lower()}@kline_{kline_interval}"]


# --- incoming messages ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TradeEvent:
    stream: str | None
    trade: Trade


@dataclass(frozen=True, slots=True)
class KlineEvent:
    stream: str | None
    kline: Kline


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer to a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request."""
    id: Any
    result: Any
    error: dict | None = None


Event = TradeEvent | KlineEvent | Reply


def _decimal(value: Any, field: str, *, positive: bool) -> Decimal:
    if not isinstance(value, str):
        raise MalformedMessage(f"{field} must be a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{field} is not a decimal: {value[:40]!r}") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise MalformedMessage(f"{field} out of range: {value[:40]!r}")
    return number


def _int(value: Any, field: str) -> int:
    # bool is an int subclass; a boolean trade id is a broken message, not 0/1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage(f"{field} must be an integer")
    return value


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.isalnum() or not 2 <= len(value) <= 30:
        raise MalformedMessage("s must be a symbol")
    return value.upper()


def trade_from_payload(data: dict) -> Trade:
    """A Binance `trade` payload -> Trade."""
    try:
        return Trade(
            symbol=_symbol(data["s"]),
            trade_id=_int(data["t"], "t"),
            price=_decimal(data["p"], "p", positive=True),
            qty=_decimal(data["q"], "q", positive=False),
            ts_ms=_int(data["T"], "T"),
        )
    except KeyError as exc:
        raise MalformedMessage(f"trade payload lacks {exc.args[0]!r}") from None


def kline_from_payload(data: dict) -> Kline:
    """A Binance `kline` payload (with its `k` object) -> Kline."""
    try:
        k = data["k"]
        if not isinstance(k, dict):
            raise MalformedMessage("k must be an object")
        interval = k["i"]
        if interval not in INTERVAL_MS:
            raise MalformedMessage(f"unknown interval {interval!r}")
        closed = k["x"]
        if not isinstance(closed, bool):
            raise MalformedMessage("x must be a boolean")
        return Kline(
            symbol=_symbol(k["s"]),
            timeframe=interval,
            open_ms=_int(k["t"], "t"),
            open=_decimal(k["o"], "o", positive=True),
            high=_decimal(k["h"], "h", positive=True),
            low=_decimal(k["l"], "l", positive=True),
            close=_decimal(k["c"], "c", positive=True),
            volume=_decimal(k["v"], "v", positive=False),
            trades=_int(k["n"], "n"),
            closed=closed,
        )
    except KeyError as exc:
        raise MalformedMessage(f"kline payload lacks {exc.args[0]!r}") from None


def message_parse(raw: str | bytes) -> Event:
    """Parse one WebSocket frame (combined `{"stream","data"}` or raw payload).

    Raises MalformedMessage for anything that is not a trade, a kline or a reply;
    unknown but well-formed event types are reported as malformed too, because
    the feed only subscribes to trade and kline streams.
    """
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage("frame is not a JSON object")
    if "id" in message and ("result" in message or "error" in message):
        error = message.get("error")
        return Reply(id=message["id"], result=message.get("result"),
                     error=error if isinstance(error, dict) else None)
    stream = None
    if "stream" in message and "data" in message:
        stream, message = message["stream"], message["data"]
        if not isinstance(message, dict):
            raise MalformedMessage("data is not a JSON object")
    event_type = message.get("e")
    if event_type == "trade":
        return TradeEvent(stream, trade_from_payload(message))
    if event_type == "kline":
        return KlineEvent(stream, kline_from_payload(message))
    raise MalformedMessage(f"unexpected event type {str(event_type)[:20]!r}")


# --- REST --------------------------------------------------------------------------

def kline_from_rest_row(symbol: str, interval: str, row: Any, *, now_ms: int) -> Kline:
    """One row of GET /api/v3/klines -> Kline.

    Binance rows carry no "closed" flag: a candle is closed once its close time
    (row[6]) is in the past.
    """
    if not isinstance(row, list) or len(row) < 9:
        raise MalformedMessage("kline row must be an array of at least 9 items")
    close_ms = _int(row[6], "close time")
    return Kline(
        symbol=symbol.upper(),
        timeframe=interval,
        open_ms=_int(row[0], "open time"),
        open=_decimal(row[1], "open", positive=True),
        high=_decimal(row[2], "high", positive=True),
        low=_decimal(row[3], "low", positive=True),
        close=_decimal(row[4], "close", positive=True),
        volume=_decimal(row[5], "volume", positive=False),
        trades=_int(row[8], "trades"),
        closed=close_ms < now_ms,
    )


def request_frame(method: str, params: list[str] | None, request_id: int) -> str:
    """A live request frame: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS."""
    body: dict[str, Any] = {"method": method, "id": request_id}
    if params is not None:
        body["params"] = params
    return json.dumps(body, separators=(",", ":"))
