"""Connection state machine, backoff, protocol parsing and the ConnectionManager
against the in-process simulator (loopback, port 0)."""
from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from pipeline.feeds.manager import ConnectionManager
from pipeline.feeds.protocol import (
    KlineEvent,
    MalformedMessage,
    Reply,
    TradeEvent,
    kline_from_rest_row,
    message_parse,
    stream_parse,
)
from pipeline.feeds.state import (
    TRANSITIONS,
    ConnectionState,
    ConnectionStateMachine,
    InvalidTransition,
    backoff_delay,
)
from pipeline.tests.feed_fixtures import simulator, wait_for  # noqa: F401

S = ConnectionState
ALL_STREAMS = [f"{s}@{k}" for s in ("btcusdt", "ethusdt", "solusdt", "usdcop") for k in ("trade", "kline_1m")]


# --- pure parts ---------------------------------------------------------------------

def test_it_allows_the_connection_lifecycle_transitions():
    changes = []
    sm = ConnectionStateMachine("c", on_change=lambda name, old, new, why: changes.append((old, new)))
    for state in (S.CONNECTING, S.ERROR, S.RECONNECTING, S.CONNECTING, S.CONNECTED, S.ERROR,
                  S.RECONNECTING, S.CONNECTING, S.CONNECTED, S.DISCONNECTING, S.DISCONNECTED):
        sm.move(state)
    assert sm.state is S.DISCONNECTED and len(changes) == 11


@pytest.mark.parametrize("path", [
    [S.CONNECTED],                                   # no handshake
    [S.CONNECTING, S.CONNECTED, S.CONNECTING],       # connecting while connected
    [S.CONNECTING, S.CONNECTED, S.DISCONNECTING, S.CONNECTED],
    [S.RECONNECTING],
    [S.CONNECTING, S.ERROR, S.CONNECTED],            # an error must go through reconnecting
])
def test_it_refuses_invalid_transitions(path):
    sm = ConnectionStateMachine("c")
    with pytest.raises(InvalidTransition, match="is not allowed"):
        for state in path:
            sm.move(state)


def test_it_has_a_transition_rule_for_every_state():
    assert set(TRANSITIONS) == set(ConnectionState)
    assert all(targets <= set(ConnectionState) for targets in TRANSITIONS.values())


def test_it_backs_off_exponentially_with_full_jitter_and_a_cap():
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(5.0, 0.1 * 2 ** attempt)
        delays = [backoff_delay(attempt, base=0.1, cap=5.0, rng=rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not bunched near the ceiling.
        assert min(delays) < 0.1 * ceiling and max(delays) > 0.9 * ceiling
    assert backoff_delay(10_000, base=1, cap=2, rng=rng) <= 2


def test_it_parses_binance_frames_into_trades_and_klines():
    trade = message_parse('{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT","t":17,'
                          '"p":"60000.10000000","q":"0.00100000","T":1,"m":true,"M":true}}')
    assert isinstance(trade, TradeEvent) and trade.stream == "btcusdt@trade"
    assert (trade.trade.symbol, trade.trade.trade_id, trade.trade.price, trade.trade.qty, trade.trade.ts_ms) == \
        ("BTCUSDT", 17, Decimal("60000.1"), Decimal("0.001"), 1)
    kline = message_parse('{"e":"kline","E":2,"s":"ETHUSDT","k":{"t":60000,"T":119999,"s":"ETHUSDT","i":"1m",'
                          '"f":1,"L":2,"o":"1.0","c":"2.0","h":"2.5","l":"0.5","v":"10","n":2,"x":true,'
                          '"q":"15","V":"5","Q":"7","B":"0"}}')
    assert isinstance(kline, KlineEvent) and kline.stream is None
    assert kline.kline.closed and kline.kline.open_ms == 60000 and kline.kline.high == Decimal("2.5")
    assert message_parse('{"result":null,"id":3}') == Reply(id=3, result=None)
    row = [60000, "1", "2", "0.5", "1.5", "9", 119999, "13", 4, "4", "6", "0"]
    assert kline_from_rest_row("ethusdt", "1m", row, now_ms=120000).closed
    assert not kline_from_rest_row("ethusdt", "1m", row, now_ms=119999).closed
    assert str(stream_parse("btcusdt@kline_1m")) == "btcusdt@kline_1m"


@pytest.mark.parametrize("frame", [
    "{not json", "[1,2]", b"\xff\xfe\x00", '{"e":"mystery"}', '{"stream":"x","data":[1]}',
    '{"e":"trade","s":"BTCUSDT","t":"1","p":"1","q":"1","T":1}',       # id as a string
    '{"e":"trade","s":"BTCUSDT","t":true,"p":"1","q":"1","T":1}',      # id as a boolean
    '{"e":"trade","s":"BTCUSDT","t":1,"p":"NaN","q":"1","T":1}',
    '{"e":"trade","s":"BTCUSDT","t":1,"p":"0","q":"1","T":1}',
    '{"e":"trade","s":"BTCUSDT","t":1,"p":1.5,"q":"1","T":1}',         # number, not string
    '{"e":"trade","s":"BTC/USDT","t":1,"p":"1","q":"1","T":1}',
    '{"e":"kline","s":"BTCUSDT","k":{"t":1,"i":"1m"}}',
    '{"e":"kline","s":"BTCUSDT","k":{"t":1,"T":2,"s":"BTCUSDT","i":"9m","o":"1","c":"1","h":"1","l":"1",'
    '"v":"1","n":1,"x":true}}',
])
def test_it_rejects_malformed_frames(frame):
    with pytest.raises(MalformedMessage):
        message_parse(frame)


# --- against the simulator ------------------------------------------------------------

def _manager(sim, **overrides) -> tuple[ConnectionManager, list, list]:
    trades, klines = [], []
    options = dict(ws_url=sim.ws_url, on_trade=trades.append, on_kline=klines.append, stale_seconds=1.0,
                   backoff_base=0.05, backoff_cap=0.2, rng=random.Random(3))
    options.update(overrides)
    return ConnectionManager(**options), trades, klines


def _server_streams(sim) -> list[list[str]]:
    return [c["streams"] for c in sim.clients_snapshot()]


async def test_it_registers_a_connection_only_after_its_handshake(simulator):
    simulator.refuse_handshakes(3)
    manager, trades, _ = _manager(simulator, backoff_base=0.15, backoff_cap=0.3)
    await manager.start()
    try:
        await manager.subscribe(["btcusdt@trade"])
        conn = manager.connections()[0]
        await wait_for(lambda: conn.health.handshake_failures >= 1)
        # Refused: the logical connection retries, but nothing is registered.
        assert manager.registered() == {}
        assert manager.stats()["registered"] == 0
        assert conn.state in (S.CONNECTING, S.ERROR, S.RECONNECTING)
        await wait_for(lambda: conn.state is S.CONNECTED, timeout=5)
        assert conn.health.handshake_failures == 3
        assert list(manager.registered()) == [conn.name]
        assert manager.transitions[("connecting", "error")] == 3
        await wait_for(lambda: trades)
    finally:
        await manager.stop()
    assert manager.registered() == {} and simulator.clients_snapshot() == []


async def test_it_restores_every_subscription_after_a_drop(simulator):
    manager, trades, klines = _manager(simulator)
    await manager.start()
    try:
        await manager.subscribe(ALL_STREAMS[:6])
        assert await manager.wait_restored(3)
        await manager.subscribe(ALL_STREAMS[6:])   # added live, over SUBSCRIBE
        assert await manager.wait_restored(3)
        assert _server_streams(simulator) == [sorted(ALL_STREAMS)]
        first = manager.registered()["conn-1"]

        simulator.refuse_handshakes(1)
        assert simulator.drop_all() == 1
        conn = manager.connections()[0]
        await wait_for(lambda: conn.health.reconnects == 1 and conn.state is S.CONNECTED, timeout=5)
        assert await manager.wait_restored(3)
        # The server's own list for the new socket holds every stream again.
        assert _server_streams(simulator) == [sorted(ALL_STREAMS)]
        assert sorted(conn.confirmed) == sorted(ALL_STREAMS)
        assert manager.registered()["conn-1"].ws is not first.ws
        before = len(trades)
        await wait_for(lambda: len(trades) > before + 10 and {t.symbol for t in trades[before:]} ==
                       {"BTCUSDT", "ETHUSDT", "SOLUSDT", "USDCOP"})
        stats = manager.stats()
        assert stats["reconnects"] == 1 and stats["states"]["connected"] == 1 and stats["streams"] == 8
    finally:
        await manager.stop()


async def test_it_counts_and_skips_malformed_frames(simulator):
    manager, trades, _ = _manager(simulator)
    await manager.start()
    try:
        await manager.subscribe(["btcusdt@trade", "btcusdt@kline_1m"])
        conn = manager.connections()[0]
        await wait_for(lambda: len(trades) > 5)
        simulator.malformed(12)
        await wait_for(lambda: conn.health.malformed == 12)
        before = len(trades)
        await wait_for(lambda: len(trades) > before + 5)
        assert conn.state is S.CONNECTED and conn.health.reconnects == 0
        assert manager.stats()["malformed"] == 12
        ids = [t.trade_id for t in trades]
        assert ids == sorted(ids)  # nothing garbled got through as a trade
    finally:
        await manager.stop()


async def test_it_detects_a_stalled_stream_and_recovers(simulator):
    manager, trades, _ = _manager(simulator, stale_seconds=0.3)
    await manager.start()
    try:
        await manager.subscribe(["ethusdt@trade", "ethusdt@kline_1m"])
        conn = manager.connections()[0]
        await wait_for(lambda: manager.symbol_health().get("ETHUSDT", {}).get("healthy"))
        simulator.stall(1.0)
        await wait_for(lambda: not manager.symbol_health()["ETHUSDT"]["healthy"], timeout=2)
        await wait_for(lambda: conn.health.stale_events >= 1, timeout=2)
        assert "stale" in conn.health.last_error
        await wait_for(lambda: manager.symbol_health()["ETHUSDT"]["healthy"], timeout=4)
        assert conn.state is S.CONNECTED
        assert manager.transitions[("connected", "error")] >= 1
    finally:
        await manager.stop()


async def test_it_closes_a_connection_left_without_streams(simulator):
    manager, _, _ = _manager(simulator, streams_per_connection=2)
    await manager.start()
    try:
        await manager.subscribe(ALL_STREAMS[:4])
        assert await manager.wait_restored(3)
        # Two streams per connection: one connection per symbol.
        assert sorted(c.name for c in manager.connections()) == ["conn-1", "conn-2"]
        await wait_for(lambda: len(simulator.clients_snapshot()) == 2)
        await manager.unsubscribe(ALL_STREAMS[:2])
        assert [c.name for c in manager.connections()] == ["conn-2"]
        await wait_for(lambda: len(simulator.clients_snapshot()) == 1 and list(manager.registered()) == ["conn-2"])
        assert _server_streams(simulator) == [sorted(ALL_STREAMS[2:4])]
    finally:
        await manager.stop()


async def test_it_stops_every_connection_cleanly(simulator):
    manager, _, _ = _manager(simulator, streams_per_connection=2)
    await manager.start()
    await manager.subscribe(ALL_STREAMS)
    assert await manager.wait_restored(3)
    conns = manager.connections()
    simulator.refuse_handshakes(100)
    simulator.drop_all()  # some connections are mid-reconnect while we stop
    await asyncio.sleep(0.05)
    await manager.stop()
    assert all(c.state is S.DISCONNECTED for c in conns)
    assert manager.registered() == {} and manager.stats()["connections"] == 0
    await wait_for(lambda: simulator.clients_snapshot() == [])
    with pytest.raises(RuntimeError, match="not running"):
        await manager.subscribe(["btcusdt@trade"])


async def test_it_records_server_pings():
    from pipeline.tests.feed_fixtures import make_simulator

    async with make_simulator(ping_interval=0.1) as sim:
        manager, trades, _ = _manager(sim)
        await manager.start()
        try:
            await manager.subscribe(["btcusdt@trade"])
            conn = manager.connections()[0]
            await wait_for(lambda: conn.health.last_ping_at is not None, timeout=3)
        finally:
            await manager.stop()
