"""The exchange simulator: Binance's wire shapes, live requests, stream/REST
consistency, deterministic prices, CSV replay and fault knobs."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipeline.feeds.protocol import MalformedMessage, message_parse
from pipeline.feeds.simulator import CsvReplay, RandomWalk
from pipeline.feeds.simulator.market import PROFILES, CsvError, units_to_str
from pipeline.tests.feed_fixtures import make_simulator, minute_clock, simulator, wait_for  # noqa: F401

TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
KLINE_KEYS = {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}


def _http(url: str, method: str = "GET") -> tuple[int, dict, object]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


async def http(url: str, method: str = "GET"):
    return await asyncio.to_thread(_http, url, method)


async def _collect(ws, seconds: float) -> list[dict]:
    out = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                out.append(json.loads(await ws.recv()))
    except TimeoutError:
        return out


async def test_it_streams_trades_and_klines_in_binance_shape(simulator):
    async with connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade/btcusdt@kline_1m") as ws:
        messages = await _collect(ws, 0.5)
    trades = [m for m in messages if m["stream"] == "btcusdt@trade"]
    klines = [m for m in messages if m["stream"] == "btcusdt@kline_1m"]
    assert trades and klines
    assert set(trades[0]) == {"stream", "data"}
    data = trades[0]["data"]
    assert set(data) == TRADE_KEYS
    assert data["e"] == "trade" and data["s"] == "BTCUSDT"
    assert isinstance(data["t"], int) and isinstance(data["m"], bool)
    assert Decimal(data["p"]) > 0 and data["p"].count(".") == 1 and len(data["p"].split(".")[1]) == 8
    k = klines[0]["data"]
    assert set(k) == {"e", "E", "s", "k"} and k["e"] == "kline"
    assert set(k["k"]) == KLINE_KEYS
    assert k["k"]["i"] == "1m" and k["k"]["T"] == k["k"]["t"] + 59_999
    # Levels are sensible for the symbol (a mean-reverting walk around 60,000).
    assert 30_000 < float(data["p"]) < 120_000


async def test_it_serves_raw_streams_on_ws_paths(simulator):
    async with connect(f"{simulator.ws_url}/ws/ethusdt@trade") as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert message["e"] == "trade" and message["s"] == "ETHUSDT"


async def test_it_answers_live_subscribe_unsubscribe_and_list(simulator):
    async with connect(f"{simulator.ws_url}/ws") as ws:
        async def request(body):
            await ws.send(json.dumps(body))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                if "id" in message:
                    return message

        assert await request({"method": "SUBSCRIBE", "params": ["solusdt@trade", "solusdt@kline_1m"], "id": 1}) \
            == {"result": None, "id": 1}
        assert await request({"method": "LIST_SUBSCRIPTIONS", "id": 2}) == \
            {"result": ["solusdt@kline_1m", "solusdt@trade"], "id": 2}
        # Raw endpoint: payloads arrive unwrapped.
        payload = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert payload["s"] == "SOLUSDT"
        assert await request({"method": "UNSUBSCRIBE", "params": ["solusdt@trade"], "id": 3}) \
            == {"result": None, "id": 3}
        assert (await request({"method": "LIST_SUBSCRIPTIONS", "id": 4}))["result"] == ["solusdt@kline_1m"]
        error = await request({"method": "SUBSCRIBE", "params": ["not a stream"], "id": 5})
        assert error["id"] == 5 and error["error"]["code"] == 2


async def test_it_builds_rest_klines_from_the_trades_it_streams():
    """What the stream sent during a closed minute aggregates to exactly the REST
    kline of that minute and to the closed kline event: a backfill after a drop is
    consistent with the stream."""
    clock = minute_clock(speed=30, seconds_before_boundary=3)
    boundary = clock() + 3
    async with make_simulator(clock=clock) as sim:
        async with connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/btcusdt@kline_1m") as ws:
            # Through one full minute and into the next (~2.5 s real).
            messages = await _collect(ws, clock.real_seconds_until(boundary + 63))
        minute = int(boundary * 1000)
        status, headers, rows = await http(
            f"{sim.rest_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={minute}&limit=1")
    assert status == 200 and headers["Content-Type"] == "application/json"
    trades = [m["data"] for m in messages
              if m["stream"] == "btcusdt@trade" and minute <= m["data"]["T"] < minute + 60_000]
    closed = [m["data"]["k"] for m in messages if m["stream"] == "btcusdt@kline_1m"
              and m["data"]["k"]["x"] and m["data"]["k"]["t"] == minute]
    assert len(trades) > 100
    ids = [t["t"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    prices = [Decimal(t["p"]) for t in trades]
    volume = sum(Decimal(t["q"]) for t in trades)
    row = rows[0]
    assert row[0] == minute and row[6] == minute + 59_999
    assert [Decimal(x) for x in row[1:6]] == [prices[0], max(prices), min(prices), prices[-1], volume]
    assert row[8] == len(trades)
    assert len(closed) == 1
    k = closed[0]
    assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["f"], k["L"]) == \
        (row[1], row[2], row[3], row[4], row[5], row[8], ids[0], ids[-1])


async def test_it_pages_rest_klines_like_the_exchange(simulator):
    now = simulator._now_ms()
    current = now - now % 60_000
    status, _, rows = await http(f"{simulator.rest_url}/api/v3/klines?symbol=ETHUSDT&interval=5m&limit=3")
    assert status == 200 and len(rows) == 3
    assert rows[-1][0] == now - now % 300_000 and rows[1][0] == rows[2][0] - 300_000
    status, _, rows = await http(f"{simulator.rest_url}/api/v3/klines?symbol=ETHUSDT&interval=1m"
                                 f"&startTime={current - 600_000}&endTime={current - 60_000}")
    assert [r[0] for r in rows] == list(range(current - 600_000, current, 60_000))
    assert all(len(r) == 12 for r in rows)
    for query, code in (("interval=1m", -1102), ("symbol=NOPE&interval=1m", -1121),
                        ("symbol=ETHUSDT&interval=7m", -1120), ("symbol=ETHUSDT&interval=1m&limit=x", -1100)):
        status, _, body = await http(f"{simulator.rest_url}/api/v3/klines?{query}")
        assert status == 400 and body["code"] == code


def test_it_walks_deterministically_from_the_seed():
    a, b = RandomWalk(["BTCUSDT"], seed=1), RandomWalk(["BTCUSDT"], seed=1)
    other = RandomWalk(["BTCUSDT"], seed=2)
    minute = 29_000_000
    assert a.minute_trades("BTCUSDT", minute) == b.minute_trades("BTCUSDT", minute)
    assert a.minute_trades("BTCUSDT", minute) != other.minute_trades("BTCUSDT", minute)
    # Continuous across minutes: consecutive trades never jump more than 1%.
    last = a.minute_trades("BTCUSDT", minute - 1)[-1].price
    first = a.minute_trades("BTCUSDT", minute)[0].price
    assert abs(first / last - 1) < 0.01
    for symbol, profile in PROFILES.items():
        price = RandomWalk([symbol], seed=3).minute_trades(symbol, minute)[0].price / 10 ** profile.price_exp
        assert 0.5 * profile.base_price < price < 2 * profile.base_price, symbol


def test_it_replays_a_csv_in_a_loop(tmp_path):
    path = tmp_path / "tape.csv"
    path.write_text("symbol,price,qty\nBTCUSDT,100.5,0.1\nBTCUSDT,101.25,0.2\nETHUSDT,10,3\n")
    origin = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    replay = CsvReplay(path, origin_ms=origin, trades_per_second=1)
    trades = replay.minute_trades("BTCUSDT", origin // 60_000)
    profile = replay.profile("BTCUSDT")
    assert [units_to_str(t.price, profile.price_exp) for t in trades[:4]] == \
        ["100.50000000", "101.25000000", "100.50000000", "101.25000000"]
    assert [t.ts_ms - origin for t in trades[:3]] == [0, 1000, 2000]
    assert len({t.trade_id for t in trades}) == len(trades) == 60
    assert replay.symbols == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.parametrize("content, message", [
    ("symbol,price\nBTCUSDT,1\n", "header must contain symbol,price,qty"),
    ("symbol,price,qty\nBTCUSDT,abc,1\n", ":2: price and qty must be decimals"),
    ("symbol,price,qty\nBTCUSDT,-1,1\n", ":2: price and qty must be positive"),
    ("symbol,price,qty,time\nBTCUSDT,1,1,yesterday\n", ":2: time must be epoch ms or ISO 8601"),
    ("symbol,price,qty\n", "no trades"),
])
def test_it_explains_a_bad_csv(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CsvError, match=message):
        CsvReplay(path, origin_ms=0)


async def test_it_refuses_handshakes_on_demand(simulator):
    simulator.refuse_handshakes(1)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{simulator.ws_url}/ws"):
            pass
    assert refused.value.response.status_code == 503
    async with connect(f"{simulator.ws_url}/ws"):
        pass
    assert simulator.counters["handshakes_refused"] == 1


async def test_it_rate_limits_rest_with_retry_after(simulator):
    simulator.rate_limit(1, retry_after=7)
    url = f"{simulator.rest_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1"
    status, headers, body = await http(url)
    assert status == 429 and headers["Retry-After"] == "7" and body["code"] == -1003
    status, _, rows = await http(url)
    assert status == 200 and len(rows) == 1


async def test_it_stalls_without_closing(simulator):
    async with connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade/btcusdt@kline_1m") as ws:
        await asyncio.wait_for(ws.recv(), 2)
        simulator.stall(0.5)
        await asyncio.sleep(0.05)
        await _collect(ws, 0.05)  # drain what was in flight
        assert await _collect(ws, 0.3) == []
        assert len(await _collect(ws, 0.6)) > 0
        assert simulator.clients_snapshot()  # the connection stayed open throughout


async def test_it_drops_every_connection(simulator):
    async with connect(f"{simulator.ws_url}/ws/btcusdt@trade") as ws:
        await asyncio.wait_for(ws.recv(), 2)
        assert simulator.drop_all() == 1
        with pytest.raises(Exception):
            async with asyncio.timeout(2):
                while True:
                    await ws.recv()
    await wait_for(lambda: not simulator.clients_snapshot())


async def test_it_sends_duplicate_out_of_order_and_malformed_frames(simulator):
    async with connect(f"{simulator.ws_url}/stream?streams=btcusdt@trade") as ws:
        await asyncio.wait_for(ws.recv(), 2)
        simulator.duplicates(3)
        simulator.out_of_order(4)
        simulator.malformed(6)
        raw = []
        async with asyncio.timeout(3):
            while simulator.faults.duplicates or simulator.faults.out_of_order or simulator.faults.malformed \
                    or len(raw) < 40:
                raw.append(await ws.recv())
    parsed = []
    for frame in raw:
        try:
            parsed.append(message_parse(frame).trade.trade_id)
        except MalformedMessage:
            continue
    assert len(raw) - len(parsed) == 6  # garbage frames were interleaved
    assert len(parsed) > len(set(parsed))  # duplicates
    assert any(b < a for a, b in zip(parsed, parsed[1:]))  # out of order


async def test_it_exposes_fault_knobs_over_http(simulator):
    base = f"{simulator.rest_url}/_control"
    status, _, body = await http(f"{base}/stall?seconds=0.2", "POST")
    assert status == 200 and body["faults"]["stalled_for"] > 0
    status, _, body = await http(f"{base}/rate_limit?count=2&retry_after=3", "POST")
    assert body["faults"]["rate_limit"] == 2 and body["faults"]["retry_after"] == 3
    status, _, body = await http(f"{base}/stall?seconds=abc", "POST")
    assert status == 400 and "seconds must be a number" in body["error"]
    status, _, body = await http(f"{base}/duplicates", "POST")
    assert status == 400 and "missing query parameter 'count'" in body["error"]
    status, _, body = await http(f"{base}/explode", "POST")
    assert status == 404
    status, _, body = await http(f"{base}/drop_all", "GET")
    assert status == 405
    status, _, body = await http(f"{base}/reset", "POST")
    assert body["faults"]["rate_limit"] == 0
    status, _, state = await http(f"{base}/state")
    assert status == 200 and state["symbols"] == sorted(simulator.symbols)


def test_it_rejects_bad_simulator_options():
    with pytest.raises(CommandError, match="--trades-per-second must be between"):
        call_command("run_exchange_simulator", "--trades-per-second", "0")
    with pytest.raises(CommandError, match="--symbols must be a comma-separated list"):
        call_command("run_exchange_simulator", "--symbols", "BTC-USDT")
    with pytest.raises(CommandError, match="cannot replay CSV: .*no such file"):
        call_command("run_exchange_simulator", "--csv", "/nonexistent.csv")


def test_it_says_when_the_port_is_taken():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"port {port} on 127.0.0.1 is already in use"):
            call_command("run_exchange_simulator", "--port", str(port))
