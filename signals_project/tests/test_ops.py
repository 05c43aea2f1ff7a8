"""/health/, /metrics and /api/stats/ (the operator doors), and health scoring."""
from __future__ import annotations

import pytest

from pipeline.health import score_components


def test_it_scores_all_ok_as_ok_100():
    result = score_components({"database": {"status": "ok"}, "redis": {"status": "ok"},
                               "market_data": {"status": "ok"}})
    assert result["status"] == "ok" and result["score"] == 100


def test_it_is_down_when_a_critical_component_is_down():
    result = score_components({"database": {"status": "down"}, "redis": {"status": "ok"},
                               "market_data": {"status": "ok"}})
    assert result["status"] == "down" and result["score"] == 60


def test_it_is_degraded_when_market_data_is_stale():
    result = score_components({"database": {"status": "ok"}, "redis": {"status": "ok"},
                               "market_data": {"status": "degraded"}})
    assert result["status"] == "degraded" and result["score"] == 85


@pytest.mark.django_db
def test_it_reports_health_with_components(client):
    response = client.get("/health/")
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert response.status_code == 200
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["redis"]["status"] == "ok"
    assert 0 <= body["score"] <= 100


@pytest.mark.django_db
def test_it_answers_503_down_when_redis_is_unreachable(client, settings):
    from conftest import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["components"]["redis"]["status"] == "down"
    assert "error" in body["components"]["redis"]


@pytest.mark.django_db
def test_it_exposes_prometheus_metrics(client, signal_factory):
    signal_factory()
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "signals_last_id " in text
    assert "signals_ws_connections" in text
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
