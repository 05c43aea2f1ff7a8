"""/health/, /metrics and /api/stats/ (the operator doors), and health scoring."""
from __future__ import annotations

import re

import pytest

from pipeline.tests.feed_fixtures import feed_redis  # noqa: F401


@pytest.fixture(autouse=True)
def _no_cached_health_check(settings):
    """Each test starts without the Redis copy of the last health check, and every
    request computes its answer (no per-process coalescing)."""
    from pipeline.redis_store import redis_client, redis_key

    settings.OPS_COALESCE_SECONDS = 0
    client, key = redis_client(), redis_key("health:latest")  # before a test points REDIS_URL away
    client.delete(key)
    yield
    client.delete(key)

@pytest.mark.django_db
def test_it_reports_health_with_components(client):
    response = client.get("/health/")
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert response.status_code == 200
    assert body["database"]["status"] == "ok"
    assert body["redis"]["status"] == "ok"
    assert set(body["components"]) == {"pipeline", "data_flow", "exchange", "candles", "strategies", "errors"}
    assert 0 <= body["score"] <= 100


@pytest.mark.django_db
def test_it_answers_503_down_when_redis_is_unreachable(client, settings):
    from conftest import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["redis"]["status"] == "down"
    assert "Error" in body["redis"]["reason"]


@pytest.mark.django_db
def test_it_exposes_prometheus_metrics(client, signal_factory):
    signal_factory()
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "signals_last_id " in text
    assert "signals_ws_connections" in text
    # The request's own connection comes from the pool and is in use while it answers.
    in_use = re.search(r'^db_pool_connections\{state="in_use"\} (\S+)$', text, re.M)
    assert in_use and float(in_use.group(1)) >= 1, text[-2000:]
    assert re.search(r"^db_pool_max_connections \S+$", text, re.M)
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_it_counts_24h_stats_by_market_and_source_with_win_rates(staff_client, signal_factory):
    from decimal import Decimal

    from signals.services import signal_outcome_close

    won = signal_factory(source="ema_cross")
    lost = signal_factory(source="ema_cross")
    signal_factory(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4100")
    signal_outcome_close(signal_id=won.id, status="tp_hit", exit_price=Decimal("120"))
    signal_outcome_close(signal_id=lost.id, status="sl_hit", exit_price=Decimal("90"))
    body = staff_client.get("/api/stats/").json()
    assert body["signals"]["total"] == 3
    assert body["signals"]["by_market"] == {"crypto": 2, "forex": 1}
    assert body["signals"]["by_source"] == {"ema_cross": 2, "manual": 1}
    assert body["triggers"]["total"] == 2
    assert body["win_rate_by_source"]["ema_cross"]["win_rate"] == 0.5
    assert "market_updates" in body


def test_it_refuses_stats_to_anonymous_users(client, db):
    assert client.get("/api/stats/").status_code in (401, 403)


# --- health: stored snapshots, live and ready, history -----------------------------------

def _snapshot(*, score: int, status: str, age_seconds: float = 0.0):
    import datetime as dt

    from django.utils import timezone

    from pipeline.models import HealthSnapshot

    components = {"pipeline": {"points": 0, "max": 30, "status": "down", "reason": "no feed process"}}
    return HealthSnapshot.objects.create(created_at=timezone.now() - dt.timedelta(seconds=age_seconds),
                                         status=status, score=score, components=components)


@pytest.mark.django_db
def test_it_serves_the_latest_stored_snapshot_and_answers_503_only_when_down(client):
    _snapshot(score=40, status="down", age_seconds=60)
    _snapshot(score=70, status="degraded", age_seconds=5)
    response = client.get("/health/")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded" and body["score"] == 70
    assert body["components"]["pipeline"]["reason"] == "no feed process" and "note" not in body
    _snapshot(score=49, status="down")
    response = client.get("/health/")
    assert response.status_code == 503 and response.json()["status"] == "down"


@pytest.mark.django_db
def test_it_scores_now_when_the_stored_snapshot_is_old(client):
    _snapshot(score=100, status="ok", age_seconds=600)
    body = client.get("/health/").json()
    assert "celery beat" in body["note"]
    # No feed runs in this test: the fresh score says so instead of the old 100.
    assert body["components"]["pipeline"]["points"] == 0 and body["score"] < 100


@pytest.mark.django_db
def test_it_answers_live_always_and_ready_only_with_database_and_redis(client, settings):
    from conftest import free_port

    assert client.get("/health/live/").json() == {"status": "ok"}
    ready = client.get("/health/ready/")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ready = client.get("/health/ready/")
    assert ready.status_code == 503
    assert ready.json()["redis"]["status"] == "down" and ready.json()["database"]["status"] == "ok"
    assert client.get("/health/live/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_records_a_snapshot_prunes_old_ones_and_pushes_a_health_frame(settings):
    import asyncio
    import json

    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.test import Client

    from pipeline.health_facts import health_check_record
    from pipeline.models import HealthSnapshot

    settings.HEALTH_HISTORY_HOURS = 1
    old = _snapshot(score=10, status="down", age_seconds=2 * 3600)

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("signals", channel)
        try:
            health = await sync_to_async(health_check_record, thread_sensitive=False)()
            message = await asyncio.wait_for(layer.receive(channel), 10)
        finally:
            await layer.group_discard("signals", channel)
        return health, message

    health, message = asyncio.run(scenario())
    frame = json.loads(message["frame"])
    assert frame["type"] == "health" and frame["score"] == health["score"]
    assert set(frame["components"]) == {"pipeline", "data_flow", "exchange", "candles", "strategies", "errors"}
    rows = list(HealthSnapshot.objects.all())
    assert [r.score for r in rows] == [health["score"]] and old.pk not in [r.pk for r in rows]
    assert rows[0].facts["totals"]["feed_pid"] is None
    # /health/ serves this check from its Redis copy, even once the row is gone.
    HealthSnapshot.objects.all().delete()
    body = Client().get("/health/").json()
    assert body["score"] == health["score"] and body["checked_at"] == health["at"] and "note" not in body


# --- /metrics access and series ---------------------------------------------------------

@pytest.mark.django_db
def test_it_refuses_metrics_outside_the_allowed_networks_without_token_or_staff(client, settings, staff_user):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **remote).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **remote).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", **remote).status_code == 200
    settings.METRICS_ALLOW_CIDRS = ["203.0.113.0/24"]
    assert client.get("/metrics", **remote).status_code == 200
    settings.METRICS_ALLOW_CIDRS = []
    assert client.get("/metrics").status_code == 403  # loopback too, once not allowed
    client.force_login(staff_user)
    assert client.get("/metrics", **remote).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_exports_shared_counters_feed_and_health_series(client, instruments, feed_redis):
    from pipeline.feeds.health_store import feed_health_publish
    from pipeline.redis_store import redis_client, redis_key
    from conftest import make_signal
    from pipeline.tests.feed_fixtures import wait_until

    client_ = redis_client()
    client_.delete(redis_key("metrics:signals_committed_total"))
    make_signal(source="ema_cross")
    make_signal(source="ema_cross")
    _snapshot(score=77, status="degraded")
    feed_health_publish(symbols={}, connections=[{"name": "conn-1", "state": "connected"}],
                        process={"started_at": 0, "stats": {"messages": 12, "reconnects": 2},
                                 "messages_per_second": 3.5})
    wait_until(lambda: "signals_committed_total{source=\"ema_cross\"} 2.0" in client.get("/metrics").content.decode())
    text = client.get("/metrics").content.decode()
    for line in ('feed_up 1.0', 'feed_connections{state="connected"} 1.0', 'feed_messages_total 12.0',
                 'feed_reconnects_total 2.0', 'feed_messages_per_second 3.5', 'health_score 77.0',
                 'health_component_points{component="pipeline"} 0.0'):
        assert line in text, line


@pytest.mark.django_db
def test_it_computes_health_and_metrics_at_most_once_per_interval(client, settings):
    settings.OPS_COALESCE_SECONDS = 60
    _snapshot(score=90, status="ok")
    first = client.get("/health/").json()
    _snapshot(score=40, status="down")
    assert client.get("/health/").json() == first  # the same answer within the interval
    settings.OPS_COALESCE_SECONDS = 0
    response = client.get("/health/")
    assert response.status_code == 503 and response.json()["score"] == 40
