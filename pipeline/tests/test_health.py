"""The health score (pipeline.health): each component and each threshold, from
constructed facts; and the rate-aware stall rule it relies on (pipeline.feeds.state)."""
from __future__ import annotations

import pytest

from pipeline.feeds.state import gap_ewma_update, stall_limit, symbol_stream_healthy
from pipeline.health import (
    WEIGHTS,
    HealthFacts,
    MarketFacts,
    StrategyFacts,
    StreamFacts,
    health_score,
    health_status_for,
)
from pipeline.tests.feed_fixtures import feed_redis  # noqa: F401


def _flowing(symbol: str) -> StreamFacts:
    return StreamFacts(symbol=symbol, streamed=True, connected=True, flowing=True, candle_fresh=True)


def _healthy(**overrides) -> HealthFacts:
    fields = dict(
        feed_heartbeat_age=1.0, ingested_recent=500,
        markets=(MarketFacts("crypto", True, "ACTIVE", (_flowing("BTCUSDT"), _flowing("ETHUSDT"))),
                 MarketFacts("forex", False, "STOPPED", (StreamFacts("USDCOP"),))),
        events_recent=1000,
    )
    fields.update(overrides)
    return HealthFacts(**fields)


def _crypto(*streams: StreamFacts, readiness: str = "ACTIVE") -> tuple[MarketFacts, ...]:
    return (MarketFacts("crypto", True, readiness, streams),)


def test_it_scores_a_healthy_system_100_ok_with_the_seed_weights():
    result = health_score(_healthy())
    assert result["status"] == "ok" and result["score"] == 100
    assert {n: c["max"] for n, c in result["components"].items()} == {
        "pipeline": 30, "data_flow": 25, "exchange": 20, "candles": 10, "strategies": 10, "errors": 5}
    assert sum(WEIGHTS.values()) == 100
    for component in result["components"].values():
        assert set(component) == {"points", "max", "status", "reason"}
        assert component["status"] == "ok" and component["points"] == component["max"]
    assert result["components"]["strategies"]["reason"] == "no strategies configured"
    assert result["database"]["status"] == "ok" and result["redis"]["status"] == "ok"


def test_it_gives_no_pipeline_points_without_a_feed_heartbeat():
    component = health_score(_healthy(feed_heartbeat_age=None))["components"]["pipeline"]
    assert component["points"] == 0 and component["status"] == "down"
    assert "run_feed" in component["reason"]
    old = health_score(_healthy(feed_heartbeat_age=42.0))["components"]["pipeline"]
    assert old["points"] == 0 and "42s old" in old["reason"]


def test_it_takes_pipeline_points_for_ingest_errors_and_for_an_idle_feed():
    errors = health_score(_healthy(ingest_errors_recent=3))["components"]["pipeline"]
    assert errors["points"] == 20 and errors["status"] == "degraded" and "3 failed database writes" in errors["reason"]
    idle = health_score(_healthy(ingested_recent=0))["components"]["pipeline"]
    assert idle["points"] == 20 and "nothing ingested" in idle["reason"]
    # With no market open there is nothing to ingest: that is not a fault.
    closed = health_score(_healthy(ingested_recent=0, markets=(MarketFacts("forex", False, "STOPPED"),)))
    assert closed["components"]["pipeline"]["points"] == 30


def test_it_scores_data_flow_per_stream_and_credits_rest_filled_candles_by_half():
    stalled = StreamFacts("ETHUSDT", streamed=True, connected=True, flowing=False, candle_fresh=False)
    component = health_score(_healthy(markets=_crypto(_flowing("BTCUSDT"), stalled)))["components"]["data_flow"]
    assert component["points"] == round(25 * 0.5) and "ETHUSDT" in component["reason"]
    filled = StreamFacts("ETHUSDT", streamed=True, connected=True, flowing=False, polled=True, candle_fresh=True)
    component = health_score(_healthy(markets=_crypto(_flowing("BTCUSDT"), filled)))["components"]["data_flow"]
    assert component["points"] == round(25 * 0.75) and "kept fresh by REST" in component["reason"]
    dead = health_score(_healthy(markets=_crypto(StreamFacts("BTCUSDT"))))["components"]["data_flow"]
    assert dead["points"] == 0 and dead["status"] == "down"


def test_it_ignores_closed_markets_in_flow_exchange_and_candles():
    result = health_score(_healthy(markets=(MarketFacts("forex", False, "STOPPED", (StreamFacts("USDCOP"),)),)))
    for name in ("data_flow", "exchange", "candles"):
        assert result["components"][name]["points"] == WEIGHTS[name]


def test_it_scores_exchange_streams_with_partial_credit_for_rest_polling():
    polled = StreamFacts("ETHUSDT", polled=True)
    down = StreamFacts("SOLUSDT")
    component = health_score(_healthy(markets=_crypto(_flowing("BTCUSDT"), polled, down)))["components"]["exchange"]
    assert component["points"] == round(20 * 1.5 / 3)
    assert "ETHUSDT" in component["reason"] and "REST polling covers ETHUSDT" in component["reason"]


@pytest.mark.parametrize("readiness,points", [("ACTIVE", 10), ("READY", 8), ("CHECKING_DATA", 5),
                                              ("WAITING_DATA", 5), ("ERROR", 0), ("STOPPED", 0)])
def test_it_scores_candles_by_the_readiness_of_open_markets(readiness, points):
    component = health_score(_healthy(markets=_crypto(_flowing("BTCUSDT"), readiness=readiness)))["components"]
    assert component["candles"]["points"] == points
    if readiness != "ACTIVE":
        assert f"crypto {readiness}" in component["candles"]["reason"]


def test_it_scores_strategies_by_the_share_evaluated_on_time():
    late = StrategyFacts(enabled=4, late=("rsi_reversal BTCUSDT 1m",))
    component = health_score(_healthy(strategies=late))["components"]["strategies"]
    assert component["points"] == round(10 * 3 / 4) and "rsi_reversal BTCUSDT 1m" in component["reason"]
    on_time = health_score(_healthy(strategies=StrategyFacts(enabled=4)))["components"]["strategies"]
    assert on_time["points"] == 10 and on_time["reason"] == ""


@pytest.mark.parametrize("errors,events,points", [(0, 1000, 5), (5, 1000, 3), (30, 1000, 1), (100, 1000, 0),
                                                  (3, 0, 0)])
def test_it_scores_errors_by_their_rate(errors, events, points):
    component = health_score(_healthy(errors_recent=errors, events_recent=events))["components"]["errors"]
    assert component["points"] == points


@pytest.mark.parametrize("score,status", [(100, "ok"), (85, "ok"), (84, "degraded"), (50, "degraded"),
                                          (49, "down"), (0, "down")])
def test_it_maps_the_score_to_status_at_85_and_50(score, status):
    assert health_status_for(score=score, database_ok=True, redis_ok=True) == status


def test_it_is_down_when_the_database_or_redis_is_unreachable_whatever_the_score():
    assert health_status_for(score=100, database_ok=False, redis_ok=True) == "down"
    assert health_status_for(score=100, database_ok=True, redis_ok=False) == "down"
    result = health_score(_healthy(redis_error="ConnectionError: refused"))
    assert result["score"] == 100 and result["status"] == "down"
    assert result["redis"] == {"status": "down", "reason": "ConnectionError: refused"}


def test_it_reaches_each_status_from_facts():
    # Feed gone, REST polling keeps candles fresh: data flows in part, but down overall.
    polled = StreamFacts("BTCUSDT", polled=True, candle_fresh=True)
    gone = health_score(_healthy(feed_heartbeat_age=None, markets=_crypto(polled, readiness="STOPPED")))
    assert gone["status"] == "down" and gone["score"] < 50
    # One of two streams stalled, nothing covering it yet.
    stalled = StreamFacts("ETHUSDT", streamed=True, connected=True)
    half = health_score(_healthy(markets=_crypto(_flowing("BTCUSDT"), stalled, readiness="READY")))
    assert half["status"] == "degraded" and 50 <= half["score"] < 85


def test_it_learns_a_streams_gap_and_scales_its_stall_limit_with_it():
    mean = None
    for _ in range(50):
        mean = gap_ewma_update(mean, 0.1)
    assert mean == pytest.approx(0.1)
    busy = stall_limit(expected_gap=mean, stale_seconds=15, min_seconds=2, factor=10)
    quiet = stall_limit(expected_gap=1.2, stale_seconds=15, min_seconds=2, factor=10)
    assert busy == 2 and quiet == pytest.approx(12)
    assert stall_limit(expected_gap=5.0, stale_seconds=15, min_seconds=2, factor=10) == 15
    assert stall_limit(expected_gap=None, stale_seconds=15, min_seconds=2, factor=10) == 15
    # A busy stream silent for 3 s is stalled; a quiet one silent as long is not.
    kwargs = dict(state="connected", symbol_last_message_at=100.0, now=103.0, stale_seconds=15, min_seconds=2,
                  factor=10)
    assert not symbol_stream_healthy(expected_gap=0.1, **kwargs)
    assert symbol_stream_healthy(expected_gap=1.2, **kwargs)
    assert not symbol_stream_healthy(**{**kwargs, "state": "reconnecting"}, expected_gap=1.2)


@pytest.mark.django_db
def test_it_finds_strategy_configs_not_evaluated_on_their_closed_candles(instruments, feed_redis):
    import datetime as dt
    from decimal import Decimal

    from django.utils import timezone

    from pipeline.aggregation import ms_to_dt
    from pipeline.health_facts import health_facts_collect
    from pipeline.models import StrategyConfig
    from pipeline.services import klines_ingest
    from pipeline.market_data import Kline

    now = timezone.now()
    now_ms = int(now.timestamp() * 1000)
    minute = now_ms - now_ms % 60_000
    opens = [minute - 6 * 60_000, minute - 5 * 60_000, minute - 4 * 60_000]
    klines_ingest(klines=[Kline("BTCUSDT", "1m", t, Decimal(1), Decimal(2), Decimal(1), Decimal(2), Decimal(1), 1,
                                True) for t in opens])
    config = StrategyConfig.objects.create(strategy="rsi_reversal", instrument=instruments["BTCUSDT"],
                                           timeframe="1m", params={})
    StrategyConfig.objects.filter(pk=config.pk).update(created_at=now - dt.timedelta(hours=1))

    def strategies():
        return health_facts_collect(now=now)[0].strategies

    assert strategies() == StrategyFacts(enabled=1, late=("rsi_reversal BTCUSDT 1m",))
    StrategyConfig.objects.filter(pk=config.pk).update(last_candle_open_time=ms_to_dt(opens[1]))
    assert strategies().late == ("rsi_reversal BTCUSDT 1m",)  # one closed candle still waits
    StrategyConfig.objects.filter(pk=config.pk).update(last_candle_open_time=ms_to_dt(opens[2]))
    assert strategies() == StrategyFacts(enabled=1, late=())
    # A candle that closed moments ago is within its grace: not late yet.
    klines_ingest(klines=[Kline("BTCUSDT", "1m", minute - 60_000, Decimal(1), Decimal(2), Decimal(1), Decimal(2),
                                Decimal(1), 1, True)])
    assert health_facts_collect(now=ms_to_dt(minute + 10_000))[0].strategies.late == ()
    # Configured after those candles closed: nothing was due.
    StrategyConfig.objects.filter(pk=config.pk).update(last_candle_open_time=None, created_at=now)
    assert health_facts_collect(now=ms_to_dt(minute + 10_000))[0].strategies.late == ()
    StrategyConfig.objects.filter(pk=config.pk).update(enabled=False)
    assert strategies() == StrategyFacts(enabled=0, late=())
