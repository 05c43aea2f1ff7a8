"""The exchange simulator's server: Binance's WebSocket streams, live requests and
REST klines on ONE loopback port, plus fault knobs.

Built on the `websockets` asyncio server: WebSocket paths (`/stream`, `/ws`,
`/ws/<stream>`) go through the normal handshake; every other path is answered as
plain HTTP from `process_request` (REST, control endpoint), so no web framework is
needed for a handful of JSON endpoints.

Faults are knobs on the running server, usable in-process (`sim.stall(2)`) by tests
and over HTTP (`POST /_control/stall?seconds=2`) by demos; they model what real
feeds do to clients: connections dropped, streams that go silent without closing,
refused handshakes, garbage frames, duplicated and late trades, REST rate limits.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..protocol import INTERVAL_MS, stream_parse
from .endpoints import (
    MALFORMED_FRAMES,
    Faults,
    binance_error,
    control_response,
    json_response,
    kline_rows,
    klines_response,
)
from .market import SimKline, SimTrade, TapeReader, TradeSource, units_to_str

logger = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
MAX_CLIENT_MESSAGES_PER_SECOND = 5
# A clock jump (host suspended, a test moving market time) is skipped, not replayed:
# replaying days of trades would block the event loop and flood the clients.
MAX_CATCH_UP_MS = 30_000


@dataclass
class _Client:
    ws: ServerConnection
    combined: bool
    streams: set[str] = field(default_factory=set)
    recent_requests: deque = field(default_factory=deque)


class ExchangeSimulator:
    """Serve `source` over Binance's protocol on host:port (port 0 = pick one).

    Use `await sim.start()` / `await sim.stop()` (or `async with`). Timing knobs are
    parameters so tests can run the same server with sub-second cadences.
    """

    def __init__(
        self,
        source: TradeSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_interval: float = 0.1,
        kline_push_interval: float = 1.0,
        ping_interval: float | None = 20.0,
        clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self.tape = TapeReader(source)
        self.host = host
        self.port = port
        self.tick_interval = tick_interval
        self.kline_push_interval = kline_push_interval
        self.ping_interval = ping_interval
        self.clock = clock
        self.faults = Faults()
        self.symbols = set(source.symbols)
        self._clients: dict[ServerConnection, _Client] = {}
        self._server = None
        self._ticker: asyncio.Task | None = None
        self._last_tick_ms = 0
        self._last_kline_push: dict[tuple[str, str], float] = {}
        self._held_trades: list[tuple[str, str]] = []   # (stream, data json) for out_of_order
        self._malformed_index = 0
        self.counters: Counter = Counter()
        self.rest_requests_by_key: Counter = Counter()

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> "ExchangeSimulator":
        self._server = await serve(
            self._handle_ws, self.host, self.port,
            process_request=self._process_request,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_interval,
            # The exchange's frames are small JSON; no need for compression work.
            compression=None,
            logger=logging.getLogger("pipeline.feeds.simulator.ws"),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._last_tick_ms = self._now_ms()
        self._ticker = asyncio.create_task(self._tick_forever(), name="simulator-ticker")
        logger.info("exchange simulator listening on %s", self.ws_url)
        return self

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "ExchangeSimulator":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- fault knobs (in-process API; the control endpoint calls these) ----------

    def drop_all(self) -> int:
        """Abort every client connection without a closing handshake (like a network cut)."""
        clients = list(self._clients)
        logger.info("fault: dropping %d connections", len(clients))
        for ws in clients:
            ws.transport.abort()
        self.counters["dropped"] += len(clients)
        return len(clients)

    def stall(self, seconds: float) -> None:
        """Send no data for `seconds`, keeping connections open; trades meanwhile are lost."""
        self.faults.stall_until = self.clock() + seconds

    def refuse_handshakes(self, count: int) -> None:
        self.faults.refuse_handshakes = count

    def malformed(self, count: int) -> None:
        self.faults.malformed = count

    def duplicates(self, count: int) -> None:
        self.faults.duplicates = count

    def out_of_order(self, count: int) -> None:
        self.faults.out_of_order = count

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        self.faults.rate_limit = count
        self.faults.retry_after = retry_after

    def reset_faults(self) -> None:
        self.faults = Faults()

    def clients_snapshot(self) -> list[dict[str, Any]]:
        return [
            {"remote": "%s:%s" % c.ws.remote_address[:2], "combined": c.combined,
             "streams": sorted(c.streams)}
            for c in self._clients.values()
        ]

    def faults_state(self) -> dict[str, Any]:
        """The pending faults (what GET /_control/state reports under "faults")."""
        return self.faults.as_dict(self.clock())

    def state(self) -> dict[str, Any]:
        return {
            "symbols": sorted(self.symbols),
            "clients": self.clients_snapshot(),
            "faults": self.faults_state(),
            "counters": dict(self.counters),
            "rest_requests_by_key": dict(self.rest_requests_by_key),
        }

    # --- HTTP side ------------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path in ("/stream", "/ws") or path.startswith("/ws/"):
            if self.faults.refuse_handshakes > 0:
                self.faults.refuse_handshakes -= 1
                self.counters["handshakes_refused"] += 1
                return json_response(503, {"code": -1, "msg": "Service unavailable (simulated)."})
            try:
                self._initial_streams(path, query)
            except ValueError as exc:
                return binance_error(400, 2, f"Invalid request: {exc}")
            return None  # proceed with the WebSocket handshake
        if path.startswith("/_control/"):
            return control_response(self, conn, request.method, path.removeprefix("/_control/"), query)
        if request.method != "GET":
            return binance_error(405, -1, "Method not allowed.")
        if path == "/api/v3/klines":
            return await klines_response(self, request, query)
        if path == "/api/v3/ping":
            return json_response(200, {})
        if path == "/api/v3/time":
            return json_response(200, {"serverTime": self._now_ms()})
        return binance_error(404, -1, "Not found.")

    @staticmethod
    def _initial_streams(path: str, query: dict[str, str]) -> list[str]:
        if path == "/stream":
            names = [s for s in query.get("streams", "").split("/") if s]
        elif path.startswith("/ws/"):
            names = [s for s in path.removeprefix("/ws/").split("/") if s]
        else:
            names = []
        if len(names) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")
        for name in names:
            stream_parse(name)
        return names

    def rest_request_admit(self, key: str) -> int | None:
        """Count one REST request by API key; the Retry-After seconds when the
        rate-limit fault refuses it, else None."""
        self.rest_requests_by_key[key] += 1
        self.counters["rest_requests"] += 1
        if self.faults.rate_limit <= 0:
            return None
        self.faults.rate_limit -= 1
        self.counters["rest_rate_limited"] += 1
        return self.faults.retry_after

    def rest_weight(self) -> int:
        """The request weight reported in X-MBX-USED-WEIGHT-1M."""
        return self.counters["rest_requests"] * 2

    def klines(self, symbol: str, interval: str, *, start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 500) -> list[list[Any]]:
        """What GET /api/v3/klines answers now (endpoints.kline_rows over this tape)."""
        return kline_rows(self.tape, self.source.profile(symbol), symbol, INTERVAL_MS[interval], now_ms=self._now_ms(),
                          start_ms=start_ms, end_ms=end_ms, limit=limit)

    # --- WebSocket side ---------------------------------------------------------------

    async def _handle_ws(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        client = _Client(ws=ws, combined=url.path == "/stream",
                         streams=set(self._initial_streams(url.path, query)))
        self._clients[ws] = client
        self.counters["connections"] += 1
        logger.info("client %s connected (%s, %d streams)", "%s:%s" % ws.remote_address[:2],
                    "combined" if client.combined else "raw", len(client.streams))
        try:
            async for message in ws:
                if not self._rate_ok(client):
                    # The exchange disconnects clients that send more than 5 messages/s.
                    await ws.close(1008, "Too many requests")
                    break
                reply = self._client_request(client, message)
                if reply is not None:
                    await ws.send(json.dumps(reply, separators=(",", ":")))
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(ws, None)
            logger.info("client %s disconnected", "%s:%s" % ws.remote_address[:2])

    def _rate_ok(self, client: _Client) -> bool:
        now = self.clock()
        window = client.recent_requests
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        return len(window) <= MAX_CLIENT_MESSAGES_PER_SECOND

    def _client_request(self, client: _Client, message: str | bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(message)
        except ValueError:
            return {"error": {"code": 3, "msg": "Invalid JSON: expected a request object"}, "id": None}
        if not isinstance(body, dict):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected a request object"}, "id": None}
        request_id = body.get("id")
        method = body.get("method")
        params = body.get("params", [])
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            return {"error": {"code": 2, "msg": "Invalid request: request ID must be an integer or string"},
                    "id": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(client.streams), "id": request_id}
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return {"error": {"code": 2, "msg": "Invalid request: params must be a list of stream names"},
                        "id": request_id}
            try:
                for name in params:
                    stream_parse(name)
            except ValueError as exc:
                return {"error": {"code": 2, "msg": f"Invalid request: {exc}"}, "id": request_id}
            if method == "SUBSCRIBE":
                if len(client.streams | set(params)) > MAX_STREAMS_PER_CONNECTION:
                    return {"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": request_id}
                client.streams.update(params)
            else:
                client.streams.difference_update(params)
            return {"result": None, "id": request_id}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown method {str(method)[:30]!r}"},
                "id": request_id}

    # --- the market clock ---------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bug in one tick must not stop the market
                logger.exception("simulator tick failed")

    def tick(self) -> None:
        """Send everything that happened since the previous tick."""
        now_ms = self._now_ms()
        after_ms, self._last_tick_ms = self._last_tick_ms, now_ms
        if now_ms - after_ms > MAX_CATCH_UP_MS:
            self.counters["clock_jumps"] += 1
            after_ms = now_ms - MAX_CATCH_UP_MS
        if self.clock() < self.faults.stall_until:
            self.counters["stalled_ticks"] += 1
            return  # silent but open: the trades of this window are never sent
        wanted: dict[str, list[_Client]] = {}
        for client in self._clients.values():
            for name in client.streams:
                wanted.setdefault(name, []).append(client)
        if not wanted:
            return
        for symbol in self.symbols:
            trade_stream = f"{symbol.lower()}@trade"
            if trade_stream in wanted:
                for trade in self.tape.trades_between(symbol, after_ms, now_ms):
                    self._send_trade(trade_stream, symbol, trade, wanted[trade_stream], now_ms)
            for interval, step in INTERVAL_MS.items():
                stream = f"{symbol.lower()}@kline_{interval}"
                if stream in wanted:
                    self._send_klines(stream, symbol, interval, step, after_ms, now_ms, wanted[stream])
        if self._held_trades and self.faults.out_of_order == 0:
            self._release_held(wanted)

    def _send(self, stream: str, data: str, clients: list[_Client]) -> None:
        if self.faults.malformed > 0:
            self.faults.malformed -= 1
            bad = MALFORMED_FRAMES[self._malformed_index % len(MALFORMED_FRAMES)]
            self._malformed_index += 1
            broadcast([c.ws for c in clients], bad)
            self.counters["malformed_sent"] += 1
        combined = [c.ws for c in clients if c.combined]
        raw = [c.ws for c in clients if not c.combined]
        if combined:
            broadcast(combined, f'{{"stream":"{stream}","data":{data}}}')
        if raw:
            broadcast(raw, data)
        self.counters["messages_sent"] += len(clients)

    def _send_trade(self, stream: str, symbol: str, trade: SimTrade, clients: list[_Client],
                    now_ms: int) -> None:
        profile = self.source.profile(symbol)
        data = json.dumps({
            "e": "trade", "E": now_ms, "s": symbol, "t": trade.trade_id,
            "p": units_to_str(trade.price, profile.price_exp),
            "q": units_to_str(trade.qty, profile.qty_exp),
            "T": trade.ts_ms, "m": trade.buyer_maker, "M": True,
        }, separators=(",", ":"))
        if self.faults.out_of_order > 0:
            # Hold this trade back; it goes out after newer ones (late delivery).
            self.faults.out_of_order -= 1
            self._held_trades.append((stream, data))
            self.counters["out_of_order_sent"] += 1
            return
        self._send(stream, data, clients)
        if self.faults.duplicates > 0:
            self.faults.duplicates -= 1
            self._send(stream, data, clients)
            self.counters["duplicates_sent"] += 1
        if self._held_trades and self.faults.out_of_order == 0:
            self._release_held({stream: clients})

    def _release_held(self, wanted: dict[str, list[_Client]]) -> None:
        held, self._held_trades = self._held_trades, []
        # Newest first: maximally out of order.
        for stream, data in reversed(held):
            if stream in wanted:
                self._send(stream, data, wanted[stream])
            else:
                self._held_trades.append((stream, data))

    def _send_klines(self, stream: str, symbol: str, interval: str, step: int, after_ms: int,
                     now_ms: int, clients: list[_Client]) -> None:
        # A boundary crossed since the previous tick closes the previous interval.
        if after_ms // step != now_ms // step:
            open_ms = now_ms // step * step - step
            kline = self.tape.kline(symbol, open_ms=open_ms, interval_ms=step, upto_ms=open_ms + step - 1)
            self._send(stream, self._kline_json(symbol, interval, kline, True, now_ms), clients)
            self.counters["klines_closed_sent"] += 1
        key = (symbol, interval)
        now = self.clock()
        if now - self._last_kline_push.get(key, 0.0) >= self.kline_push_interval:
            self._last_kline_push[key] = now
            kline = self.tape.kline(symbol, open_ms=now_ms // step * step, interval_ms=step, upto_ms=now_ms)
            self._send(stream, self._kline_json(symbol, interval, kline, False, now_ms), clients)

    def _kline_json(self, symbol: str, interval: str, k: SimKline, closed: bool, now_ms: int) -> str:
        profile = self.source.profile(symbol)
        pe, qe = profile.price_exp, profile.qty_exp
        return json.dumps({
            "e": "kline", "E": now_ms, "s": symbol,
            "k": {
                "t": k.open_ms, "T": k.close_ms, "s": symbol, "i": interval,
                "f": k.first_id, "L": k.last_id,
                "o": units_to_str(k.open, pe), "c": units_to_str(k.close, pe),
                "h": units_to_str(k.high, pe), "l": units_to_str(k.low, pe),
                "v": units_to_str(k.volume, qe), "n": k.trades, "x": closed,
                "q": units_to_str(k.quote_volume, pe + qe),
                "V": units_to_str(k.taker_buy_volume, qe),
                "Q": units_to_str(k.taker_buy_quote, pe + qe), "B": "0",
            },
        }, separators=(",", ":"))

