"""Backfill and gap repair: paging REST klines into candles, session-aware gap
detection, the periodic repair, and `manage.py backfill` against the simulator."""
from __future__ import annotations

import datetime as dt
import io
import time
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from pipeline.aggregation import MINUTE_MS, TIMEFRAME_MS, dt_to_ms, ms_to_dt
from pipeline.models import Candle
from pipeline.selectors import UnknownSymbolError, candle_gaps
from pipeline.services import candles_backfill, candles_gap_repair, klines_ingest
from pipeline.market_data import Kline

from .feed_fixtures import LoopThread, make_simulator

UTC = dt.timezone.utc
# Monday 23 November 2026 15:00 UTC = 10:00 in Bogota (forex open).
MONDAY = dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class FakeExchange:
    """An in-memory exchange with Binance's kline paging semantics (the internet is
    the only thing tests may stand in for): klines opening in [start, end], at most
    `limit`, oldest first, optionally with missing minutes."""

    def __init__(self, missing: set[int] = frozenset()):
        self.missing = set(missing)
        self.calls: list[tuple] = []

    def __call__(self, symbol, interval, start_ms, end_ms, limit):
        self.calls.append((symbol, interval, start_ms, end_ms, limit))
        step = {"1m": MINUTE_MS, "1h": 60 * MINUTE_MS}[interval]
        first = -(-start_ms // step) * step
        out = []
        t = first
        while t <= end_ms and len(out) < limit:
            if t not in self.missing:
                price = Decimal(100 + (t // step) % 7)
                out.append(Kline(symbol, interval, t, price, price + 1, price - 1, price, Decimal(2), 3, True))
            t += step
        return out


def at(value: dt.datetime) -> int:
    return dt_to_ms(value)


@pytest.mark.django_db
def test_it_pages_klines_into_candles_with_progress(instruments):
    exchange = FakeExchange()
    since, until = at(MONDAY - dt.timedelta(minutes=2500)), at(MONDAY)
    seen = []
    stored = candles_backfill(symbol="btcusdt", since_ms=since + 17, until_ms=until, fetch=exchange,
                              progress=lambda done, total: seen.append((done, total)))
    assert stored == 2500 and len(exchange.calls) == 3
    assert all(call[3] == until - 1 and call[4] == 1000 for call in exchange.calls)
    assert seen[-1] == (2500, 2500) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert Candle.objects.filter(timeframe="1m").count() == 2500
    assert candle_gaps(symbol="BTCUSDT", timeframe="1m", since_ms=since, until_ms=until) == []
    assert candle_gaps(symbol="BTCUSDT", timeframe="1h", since_ms=since, until_ms=until) == []
    # Running it again changes nothing.
    rows_before = list(Candle.objects.order_by("id").values_list("id", "updated_at"))
    candles_backfill(symbol="BTCUSDT", since_ms=since, until_ms=until, fetch=exchange)
    assert list(Candle.objects.order_by("id").values_list("id", "updated_at")) == rows_before


@pytest.mark.django_db
def test_it_stops_when_the_exchange_has_nothing_more(instruments):
    exchange = FakeExchange(missing={at(MONDAY) - i * MINUTE_MS for i in range(1, 31)})
    stored = candles_backfill(symbol="BTCUSDT", since_ms=at(MONDAY) - 90 * MINUTE_MS, until_ms=at(MONDAY),
                              fetch=exchange)
    assert stored == 60 and len(exchange.calls) == 2


@pytest.mark.django_db
def test_it_refuses_an_unknown_symbol(instruments):
    with pytest.raises(UnknownSymbolError, match="Unknown symbol 'NOPE'"):
        candles_backfill(symbol="NOPE", since_ms=0, until_ms=MINUTE_MS, fetch=FakeExchange())


@pytest.mark.django_db
def test_it_finds_gaps_only_inside_market_sessions(instruments):
    since = at(MONDAY - dt.timedelta(minutes=30))
    klines_ingest(klines=FakeExchange(missing={since + 5 * MINUTE_MS, since + 6 * MINUTE_MS, since + 20 * MINUTE_MS})(
        "BTCUSDT", "1m", since, at(MONDAY) - 1, 1000))
    gaps = candle_gaps(symbol="BTCUSDT", timeframe="1m", since_ms=since, until_ms=at(MONDAY) + 30_000)
    assert gaps == [(since + 5 * MINUTE_MS, since + 7 * MINUTE_MS), (since + 20 * MINUTE_MS, since + 21 * MINUTE_MS)]
    # USDCOP from Friday 12:00 Bogota to Monday 08:10 Bogota: only Friday 12:00-12:55
    # and Monday 08:00-08:10 are trading time; the weekend is not a gap.
    friday_noon = dt.datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    monday_open = dt.datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    gaps = candle_gaps(symbol="USDCOP", timeframe="1m", since_ms=at(friday_noon),
                       until_ms=at(monday_open + dt.timedelta(minutes=10)))
    assert gaps == [(at(friday_noon), at(friday_noon) + 55 * MINUTE_MS),
                    (at(monday_open), at(monday_open) + 10 * MINUTE_MS)]
    with pytest.raises(ValueError, match="Unsupported timeframe"):
        candle_gaps(symbol="BTCUSDT", timeframe="2m", since_ms=since, until_ms=at(MONDAY))


@pytest.mark.django_db
def test_it_repairs_gaps_of_open_markets_and_closes_finished_candles(instruments, settings):
    settings.FEED_SYMBOLS = ["BTCUSDT", "USDCOP"]
    saturday = dt.datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    exchange = FakeExchange()
    klines_ingest(klines=[Kline("BTCUSDT", "1m", at(saturday) - 40 * MINUTE_MS, Decimal(1), Decimal(1), Decimal(1),
                                Decimal(1), Decimal(1), 1, False)])
    repaired = candles_gap_repair(now=saturday, hours=1, fetch=exchange)
    assert repaired == {"BTCUSDT": 59}        # forex is closed on Saturday: not touched
    assert {call[0] for call in exchange.calls} == {"BTCUSDT"}
    assert candle_gaps(symbol="BTCUSDT", timeframe="1m", since_ms=at(saturday) - 3_600_000,
                       until_ms=at(saturday)) == []
    # Every candle whose time is over is closed (the day's 1d and 4h buckets are still forming).
    still_open = Candle.objects.filter(closed=False).values_list("timeframe", "open_time")
    assert [(tf, start) for tf, start in still_open
            if at(start) + TIMEFRAME_MS[tf] <= at(saturday) - MINUTE_MS] == []


@pytest.fixture
def simulator_rest(settings):
    loop = LoopThread()
    sim = loop.call(make_simulator(symbols=["BTCUSDT", "USDCOP"], trades_per_second=1.0).start())
    settings.BINANCE_REST_URL = sim.rest_url
    settings.BINANCE_API_KEYS = []
    yield sim
    loop.call(sim.stop())
    loop.close()


@pytest.mark.django_db
def test_it_backfills_from_the_simulator_by_command_and_the_task_finds_nothing_left(instruments, simulator_rest,
                                                                                  settings, monkeypatch):
    import pipeline.tasks

    settings.FEED_SYMBOLS = ["BTCUSDT"]
    monkeypatch.setattr(pipeline.tasks, "GAP_REPAIR_HOURS", 2)
    now = time.time()
    since = dt.datetime.fromtimestamp(now - 3 * 3600, UTC).strftime("%Y-%m-%dT%H:%M")
    out = io.StringIO()
    call_command("backfill", "btcusdt", "--since", since, "--no-progress", stdout=out)
    assert "No gaps inside the market's sessions." in out.getvalue()
    count = Candle.objects.filter(timeframe="1m").count()
    assert 180 <= count <= 182
    assert Candle.objects.filter(timeframe="1h").count() >= 3
    requests_before = simulator_rest.counters["rest_requests"]

    assert pipeline.tasks.candles_gap_repair() == {"BTCUSDT": 0}
    assert simulator_rest.counters["rest_requests"] == requests_before   # nothing to fetch


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["NOPE", "--since", "2026-11-01"], "Unknown symbol 'NOPE'. Known symbols: BTCUSDT"),
    (["BTCUSDT", "--since", "2026-13-01"], "--since: '2026-13-01' is not a valid date; use YYYY-MM-DD"),
    (["BTCUSDT", "--since", "yesterday"], "is not a valid date"),
    (["BTCUSDT", "--since", "2026-11-02", "--until", "2026-11-01"], "must be before --until"),
    (["BTCUSDT", "--since", "2099-01-01"], "is in the future"),
])
def test_it_explains_bad_command_input(instruments, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(".", r"\.")):
        call_command("backfill", *args, "--no-progress", stdout=io.StringIO())


def test_it_converts_epoch_ms_both_ways():
    assert dt_to_ms(ms_to_dt(1_795_000_123_456)) == 1_795_000_123_456
