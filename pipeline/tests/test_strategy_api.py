"""/api/strategies/: configs readable by any user, written by staff, every bad field
named in one 400, never deleted once they made signals; the catalog."""
from __future__ import annotations

import pytest

from pipeline.models import StrategyConfig
from pipeline.strategies import STRATEGIES
from pipeline.strategy_services import strategy_config_create


def _create(client, **overrides):
    body = {"strategy": "ema_crossover", "symbol": "btcusdt", "timeframe": "5m", "params": {"fast": 5}}
    body.update(overrides)
    return client.post("/api/strategies/", body, format="json")


@pytest.mark.django_db
def test_it_lets_staff_create_a_config_with_defaults_filled_in(staff_client, instruments):
    response = _create(staff_client, cooldown_minutes=15)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["strategy"] == "ema_crossover" and body["symbol"] == "BTCUSDT" and body["timeframe"] == "5m"
    assert body["params"]["fast"] == 5 and body["params"]["slow"] == 21 and body["params"]["stop_atr"] == 1.5
    assert body["enabled"] is True and body["cooldown_minutes"] == 15
    assert set(body) >= {"id", "strategy", "symbol", "timeframe", "params", "enabled", "cooldown_minutes"}
    assert StrategyConfig.objects.get(pk=body["id"]).params == body["params"]


@pytest.mark.django_db
def test_it_names_every_bad_field_in_one_answer(staff_client, instruments):
    response = _create(staff_client, symbol="NOSUCHCOIN", timeframe="7m", cooldown_minutes=-1, enabled="maybe",
                       params={"fast": 500, "slow": "x", "speed": 3})
    assert response.status_code == 400
    errors = response.json()
    assert {"symbol", "timeframe", "cooldown_minutes", "enabled", "params"} <= set(errors)
    assert set(errors["params"]) == {"fast", "slow", "speed"}
    assert "between 2 and 200" in errors["params"]["fast"][0]
    response = _create(staff_client, strategy="moon_shot")
    assert response.status_code == 400 and "Unknown strategy" in response.json()["strategy"][0]
    response = staff_client.post("/api/strategies/", {"symbol": "BTCUSDT", "colour": "red"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"strategy", "timeframe", "colour"}
    response = staff_client.post("/api/strategies/", [1, 2], format="json")
    assert response.status_code == 400
    assert StrategyConfig.objects.count() == 0


@pytest.mark.django_db
def test_it_lets_any_user_read_but_only_staff_write(reader_client, staff_client, instruments, client):
    config = strategy_config_create(strategy="rsi_reversal", symbol="ETHUSDT", timeframe="1m")
    listed = reader_client.get("/api/strategies/")
    assert listed.status_code == 200 and [c["id"] for c in listed.json()] == [config.pk]
    assert reader_client.get(f"/api/strategies/{config.pk}/").json()["strategy"] == "rsi_reversal"
    assert reader_client.patch(f"/api/strategies/{config.pk}/", {"enabled": False}, format="json").status_code == 403
    assert _create(reader_client).status_code == 403
    assert client.get("/api/strategies/").status_code == 401
    assert reader_client.get("/api/strategies/999999/").status_code == 404
    assert staff_client.put(f"/api/strategies/{config.pk}/", {}, format="json").status_code == 405


@pytest.mark.django_db
def test_it_edits_and_disables_a_config_by_patch(staff_client, instruments):
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m",
                                    params={"fast": 5, "slow": 30})
    response = staff_client.patch(f"/api/strategies/{config.pk}/", {"params": {"slow": 40}, "enabled": False},
                                  format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["params"]["fast"] == 5 and body["params"]["slow"] == 40 and body["enabled"] is False
    bad = staff_client.patch(f"/api/strategies/{config.pk}/", {"params": {"fast": 50}}, format="json")
    assert bad.status_code == 400 and bad.json()["params"] == {"fast": ["Must be shorter than slow."]}
    config.refresh_from_db()
    assert config.params["slow"] == 40 and config.enabled is False


@pytest.mark.django_db
def test_it_deletes_only_a_config_that_never_made_a_signal(staff_client, instruments, signal_factory):
    unused = strategy_config_create(strategy="macd_cross", symbol="BTCUSDT", timeframe="1h")
    assert staff_client.delete(f"/api/strategies/{unused.pk}/").status_code == 204
    used = strategy_config_create(strategy="macd_cross", symbol="BTCUSDT", timeframe="1h")
    import datetime as dt

    signal_factory(source="macd_cross", trigger={"config_id": used.pk, "timeframe": "1h",
                                                 "candle_open_time": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    response = staff_client.delete(f"/api/strategies/{used.pk}/")
    assert response.status_code == 409 and "disabled" in response.json()["detail"]
    assert StrategyConfig.objects.filter(pk=used.pk).exists()


@pytest.mark.django_db
def test_it_describes_the_catalog(reader_client):
    response = reader_client.get("/api/strategies/catalog/")
    assert response.status_code == 200
    catalog = {entry["name"]: entry for entry in response.json()}
    assert set(catalog) == set(STRATEGIES)
    fast = next(p for p in catalog["macd_cross"]["params"] if p["name"] == "fast")
    assert fast == {"name": "fast", "type": "int", "default": 12, "min": 2, "max": 200,
                    "description": "Fast EMA period."}


@pytest.mark.django_db
def test_it_documents_the_endpoints_in_the_schema(reader_client):
    schema = reader_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/strategies/", "/api/strategies/{id}/", "/api/strategies/catalog/"} <= set(schema["paths"])


@pytest.mark.django_db
def test_it_validates_configs_in_the_admin_with_the_same_rules(client, staff_user, instruments, signal_factory):
    import datetime as dt

    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    form = {"strategy": "ema_crossover", "instrument": instruments["BTCUSDT"].pk, "timeframe": "1m",
            "params": '{"fast": 50, "slow": 20}', "enabled": "on", "cooldown_minutes": "0"}
    response = client.post("/admin/pipeline/strategyconfig/add/", form)
    assert response.status_code == 200 and "Must be shorter than slow." in response.content.decode()
    assert StrategyConfig.objects.count() == 0
    form["params"] = '{"fast": 5}'
    response = client.post("/admin/pipeline/strategyconfig/add/", form)
    assert response.status_code == 302
    config = StrategyConfig.objects.get()
    assert config.params["slow"] == 21
    signal_factory(source="ema_crossover", trigger={"config_id": config.pk, "timeframe": "1m",
                                                    "candle_open_time": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    assert client.post(f"/admin/pipeline/strategyconfig/{config.pk}/delete/", {"post": "yes"}).status_code == 403
    assert StrategyConfig.objects.filter(pk=config.pk).exists()


@pytest.mark.django_db
def test_it_keeps_params_on_a_null_patch_and_answers_404_for_an_id_beyond_bigint(staff_client, instruments):
    config = strategy_config_create(strategy="ema_crossover", symbol="BTCUSDT", timeframe="1m", params={"fast": 4})
    response = staff_client.patch(f"/api/strategies/{config.pk}/", {"params": None, "cooldown_minutes": 5},
                                  format="json")
    assert response.status_code == 200 and response.json()["params"]["fast"] == 4
    assert response.json()["cooldown_minutes"] == 5
    assert staff_client.get(f"/api/strategies/{2**64}/").status_code == 404
    assert staff_client.patch(f"/api/strategies/{2**64}/", {}, format="json").status_code == 404
