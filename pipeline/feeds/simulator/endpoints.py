"""The simulator's plain-HTTP side: REST klines, the fault control endpoint, and
the fault knobs themselves.

Served from the WebSocket server's `process_request` hook (see server.py), so the
simulator needs one port and no web framework.
"""
from __future__ import annotations

import asyncio
import http
import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..protocol import INTERVAL_MS
from .market import SimKline, units_to_str

if TYPE_CHECKING:
    # Used only through its public methods: state, faults_state, the fault knobs,
    # rest_request_admit, symbols, klines, rest_weight.
    from .server import ExchangeSimulator

MAX_KLINES_LIMIT = 1000

# Frames a broken exchange or middlebox might deliver; cycled through by the
# `malformed` fault so every kind of parse failure is exercised.
MALFORMED_FRAMES: tuple[str | bytes, ...] = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTC',                 # truncated
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT"}}',    # fields missing
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
    '"p":"not-a-price","q":"1","T":1,"m":true,"M":true}}',                    # bad decimal
    "[1,2,3]",                                                                # not an object
    b"\xff\xfe\x00\x01garbage",                                              # binary junk
    '{"e":"mystery","E":1}',                                                  # unknown event
)


@dataclass
class Faults:
    """Pending faults. Counts are consumed as the faults fire."""
    stall_until: float = 0.0
    refuse_handshakes: int = 0
    malformed: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    rate_limit: int = 0
    retry_after: int = 1

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "stalled_for": round(max(0.0, self.stall_until - now), 3),
            "refuse_handshakes": self.refuse_handshakes,
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "rate_limit": self.rate_limit,
            "retry_after": self.retry_after,
        }


class ControlError(ValueError):
    """A bad control request (answered with 400 and this message)."""


def json_response(status: int, body: Any, extra: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = Headers([
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        ("Connection", "close"),
    ])
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


def binance_error(status: int, code: int, msg: str, extra: dict[str, str] | None = None) -> Response:
    return json_response(status, {"code": code, "msg": msg}, extra)


def control_response(sim: "ExchangeSimulator", conn: ServerConnection, method: str, action: str,
                     query: dict[str, str]) -> Response:
    """POST /_control/<fault>?... sets a fault; GET /_control/state reports."""
    # Fault knobs are for the operator on this machine only.
    try:
        if not ipaddress.ip_address(conn.remote_address[0]).is_loopback:
            return json_response(403, {"error": "control endpoint is loopback only"})
    except ValueError:
        return json_response(403, {"error": "control endpoint is loopback only"})
    if action == "state":
        return json_response(200, sim.state())
    if method != "POST":
        return json_response(405, {"error": f"use POST /_control/{action}"})
    try:
        if action == "drop_all":
            return json_response(200, {"dropped": sim.drop_all()})
        if action == "stall":
            sim.stall(_number(query, "seconds", 0, 3600))
        elif action == "refuse_handshakes":
            sim.refuse_handshakes(int(_number(query, "count", 0, 1_000_000)))
        elif action == "malformed":
            sim.malformed(int(_number(query, "count", 0, 1_000_000)))
        elif action == "duplicates":
            sim.duplicates(int(_number(query, "count", 0, 1_000_000)))
        elif action == "out_of_order":
            sim.out_of_order(int(_number(query, "count", 0, 1_000_000)))
        elif action == "rate_limit":
            sim.rate_limit(int(_number(query, "count", 0, 1_000_000)),
                           int(_number(query, "retry_after", 0, 3600, default=1)))
        elif action == "reset":
            sim.reset_faults()
        else:
            return json_response(404, {"error": f"unknown control action {action!r}"})
    except ControlError as exc:
        return json_response(400, {"error": str(exc)})
    return json_response(200, {"ok": True, "faults": sim.faults_state()})


async def klines_response(sim: "ExchangeSimulator", request: Request, query: dict[str, str]) -> Response:
    """GET /api/v3/klines with Binance's parameters, errors and 429 behaviour."""
    retry_after = sim.rest_request_admit(request.headers.get("X-MBX-APIKEY") or "anonymous")
    if retry_after is not None:
        return binance_error(429, -1003, "Too many requests; current limit is exceeded (simulated).",
                             {"Retry-After": str(retry_after)})
    symbol = query.get("symbol", "").upper()
    if not symbol:
        return binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    if symbol not in sim.symbols:
        return binance_error(400, -1121, "Invalid symbol.")
    interval = query.get("interval", "")
    if interval not in INTERVAL_MS:
        return binance_error(400, -1120, "Invalid interval.")
    try:
        limit = int(query.get("limit", "500"))
        start = int(query["startTime"]) if "startTime" in query else None
        end = int(query["endTime"]) if "endTime" in query else None
    except ValueError:
        return binance_error(400, -1100, "Illegal characters found in a parameter.")
    if limit <= 0:
        return binance_error(400, -1100, "limit must be positive.")
    limit = min(limit, MAX_KLINES_LIMIT)
    # Up to 1,000 klines of generated trades: computed off the event loop so the
    # streams keep flowing while a backfill is served.
    rows = await asyncio.to_thread(sim.klines, symbol, interval, start_ms=start, end_ms=end, limit=limit)
    return json_response(200, rows, {"X-MBX-USED-WEIGHT-1M": str(sim.rest_weight())})


def kline_rows(tape, profile, symbol: str, step: int, *, now_ms: int, start_ms: int | None, end_ms: int | None,
               limit: int) -> list[list[Any]]:
    """Rows of GET /api/v3/klines, Binance's semantics: klines of `step` ms opening in
    [start, end], oldest first, at most `limit`; never beyond `now_ms`."""
    last_open = (min(end_ms, now_ms) if end_ms is not None else now_ms) // step * step
    if start_ms is not None:
        first_open = -(-start_ms // step) * step
        opens = range(first_open, min(last_open, first_open + (limit - 1) * step) + 1, step)
    else:
        opens = range(max(0, last_open - (limit - 1) * step), last_open + 1, step)
    return [_rest_row(tape.kline(symbol, open_ms=o, interval_ms=step, upto_ms=now_ms), profile) for o in opens]
def _rest_row(k: SimKline, profile) -> list[Any]:
    pe, qe = profile.price_exp, profile.qty_exp
    return [
        k.open_ms, units_to_str(k.open, pe), units_to_str(k.high, pe), units_to_str(k.low, pe),
        units_to_str(k.close, pe), units_to_str(k.volume, qe), k.close_ms,
        units_to_str(k.quote_volume, pe + qe), k.trades, units_to_str(k.taker_buy_volume, qe),
        units_to_str(k.taker_buy_quote, pe + qe), "0",
    ]


def _number(query: dict[str, str], name: str, low: float, high: float, default: float | None = None) -> float:
    raw = query.get(name)
    if raw is None:
        if default is not None:
            return default
        raise ControlError(f"missing query parameter {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ControlError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ControlError(f"{name} must be between {low:g} and {high:g}")
    return value
