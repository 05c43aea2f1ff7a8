"""/api/market/latest|candles|session/ against real PostgreSQL and Redis."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from pipeline.aggregation import MINUTE_MS
from pipeline.latest_prices import latest_price_forget
from pipeline.services import klines_ingest
from pipeline.tests.feed_fixtures import feed_process  # noqa: F401
from pipeline.sessions import market_session
from pipeline.market_data import Kline, Trade

# Ten minutes ago, on a minute boundary (fixed for the session: only relative ages
# are asserted against the wall clock).
MINUTE0 = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - 10 * MINUTE_MS


@pytest.fixture(autouse=True)
def clean_state(instruments, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for symbol in instruments:
        latest_price_forget(symbol=symbol)


def kline(i: int, close: str, *, closed: bool = True) -> Kline:
    return Kline("BTCUSDT", "1m", MINUTE0 + i * MINUTE_MS, Decimal(100), Decimal(120), Decimal(90),
                 Decimal(close), Decimal("1.50000"), 7, closed)


@pytest.mark.django_db
def test_it_requires_login(client):
    for url in ("/api/market/latest/?symbol=BTCUSDT", "/api/market/candles/?symbol=BTCUSDT",
                "/api/market/session/?market=crypto"):
        assert APIClient().get(url).status_code in (401, 403)


@pytest.mark.django_db
def test_it_returns_the_latest_price_with_its_time_and_age(reader_client, feed_process):
    ts = int(time.time() * 1000) - 2_000
    feed_process.ingest([Trade("BTCUSDT", 1, Decimal("65000.50"), Decimal(1), ts)])
    response = reader_client.get("/api/market/latest/?symbol=btcusdt")
    assert response.status_code == 200
    data = response.json()
    assert data["symbol"] == "BTCUSDT" and data["price"] == "65000.5"
    assert dt.datetime.fromisoformat(data["ts"].replace("Z", "+00:00")).timestamp() == ts / 1000
    assert data["ts"].endswith("Z") and 1.5 < data["age_seconds"] < 60


@pytest.mark.django_db
def test_it_falls_back_to_the_newest_candle_when_the_cache_is_empty(reader_client):
    klines_ingest(klines=[kline(0, "101"), kline(1, "102")])
    latest_price_forget(symbol="BTCUSDT")
    data = reader_client.get("/api/market/latest/?symbol=BTCUSDT").json()
    assert data["price"] == "102"
    assert data["ts"] == dt.datetime.fromtimestamp((MINUTE0 + 2 * MINUTE_MS - 1) / 1000, dt.timezone.utc) \
        .isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.django_db
def test_it_answers_404_for_a_known_symbol_without_data(reader_client):
    response = reader_client.get("/api/market/latest/?symbol=ETHUSDT")
    assert response.status_code == 404 and "ETHUSDT" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("url, field, message", [
    ("/api/market/latest/", "symbol", "required"),
    ("/api/market/latest/?symbol=NOPE", "symbol", "Unknown symbol 'NOPE'"),
    ("/api/market/candles/?symbol=NOPE", "symbol", "Unknown symbol 'NOPE'"),
    ("/api/market/candles/?symbol=BTCUSDT&timeframe=30m", "timeframe", "not a valid choice"),
    ("/api/market/candles/?symbol=BTCUSDT&limit=0", "limit", "greater than or equal to 1"),
    ("/api/market/candles/?symbol=BTCUSDT&limit=1001", "limit", "less than or equal to 1000"),
    ("/api/market/candles/?symbol=BTCUSDT&limit=ten", "limit", "valid integer"),
    ("/api/market/candles/?symbol=" + "X" * 40, "symbol", "no more than 32"),
    ("/api/market/latest/?symbol=BTC%00USDT", "symbol", "Null characters are not allowed"),
    ("/api/market/candles/?symbol=BTCUSDT&limit=99999999999999999999999", "limit", "less than or equal to 1000"),
    ("/api/market/session/", "market", "required"),
    ("/api/market/session/?market=", "market", "required"),
    ("/api/market/session/?market=stocks", "market", "not a valid choice"),
    ("/api/market/session/?symbol=NOPE", "symbol", "Unknown symbol"),
])
def test_it_answers_400_with_field_errors_for_bad_parameters(reader_client, url, field, message):
    response = reader_client.get(url)
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])


@pytest.mark.django_db
def test_it_lists_candles_oldest_first_with_strings_for_numbers(reader_client):
    klines_ingest(klines=[kline(i, str(100 + i)) for i in range(5)] + [kline(5, "200", closed=False)])
    data = reader_client.get("/api/market/candles/?symbol=BTCUSDT&timeframe=1m&limit=3").json()
    assert [c["close"] for c in data] == ["103", "104", "200"]
    assert data[0] == {
        "open_time": dt.datetime.fromtimestamp((MINUTE0 + 3 * MINUTE_MS) / 1000, dt.timezone.utc)
        .isoformat().replace("+00:00", "Z"),
        "open": "100", "high": "120", "low": "90", "close": "103", "volume": "1.5", "trades": 7, "closed": True,
    }
    assert data[-1]["closed"] is False
    default = reader_client.get("/api/market/candles/?symbol=BTCUSDT").json()
    assert len(default) == 6
    assert reader_client.get("/api/market/candles/?symbol=ETHUSDT&timeframe=1h").json() == []


@pytest.mark.django_db
def test_it_serves_rolled_up_timeframes(reader_client):
    klines_ingest(klines=[kline(i, str(100 + i)) for i in range(10)])
    data = reader_client.get("/api/market/candles/?symbol=BTCUSDT&timeframe=1h").json()
    assert sum(c["trades"] for c in data) == 70


@pytest.mark.django_db
def test_it_answers_the_session_of_a_market_or_a_symbol(reader_client):
    crypto = reader_client.get("/api/market/session/?market=crypto").json()
    assert crypto == {"market": "crypto", "open": True, "next_open": None, "next_close": None, "timezone": "UTC"}
    forex = reader_client.get("/api/market/session/?symbol=usdcop").json()
    expected = market_session("forex", dt.datetime.now(dt.timezone.utc))
    assert forex["market"] == "forex" and forex["timezone"] == "America/Bogota"
    assert (forex["open"], forex["next_open"]) == (expected["open"], expected["next_open"])
