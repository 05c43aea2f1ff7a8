"""Server-rendered dashboard: login, rows newest first, filters, empty state."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _row_ids(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'<tr class="signal-row" data-id="(\d+)"', html)]


def _boot(html: str) -> dict:
    match = re.search(r'<script id="dashboard-boot" type="application/json">(.*?)</script>', html, re.S)
    assert match, "boot JSON missing"
    return json.loads(match.group(1))


@pytest.fixture
def logged_in(client, reader_user):
    client.force_login(reader_user)
    return client


def test_it_redirects_anonymous_visitors_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")


def test_it_renders_the_styled_login_page(client):
    response = client.get("/accounts/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">Username</label>' in html
    assert 'autocomplete="current-password"' in html
    assert "dashboard/css/dashboard.css" in html


def test_it_logs_in_through_the_form_and_lands_on_the_dashboard(client, reader_user):
    response = client.post("/accounts/login/", {"username": "reader", "password": "reader-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_shows_a_clear_error_for_a_wrong_password(client, reader_user):
    response = client.post("/accounts/login/", {"username": "reader", "password": "nope"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_it_logs_out_with_a_post(logged_in):
    response = logged_in.post("/accounts/logout/")
    assert response.status_code == 302
    assert logged_in.get("/").status_code == 302


def test_it_renders_rows_newest_first_with_a_cursor(logged_in, signal_factory):
    ids = [signal_factory().id for _ in range(3)]
    response = logged_in.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert _row_ids(html) == sorted(ids, reverse=True)
    boot = _boot(html)
    assert boot["cursor"] == max(ids)
    assert [s["id"] for s in boot["signals"]] == sorted(ids, reverse=True)
    assert 'id="empty-state" class="empty" hidden' in html
    # Direction badge, prices and outcome are in the row.
    assert "dir-long" in html and "outcome-open" in html and ">120<" in html


def test_it_filters_rows_by_market_symbol_and_source(logged_in, signal_factory):
    btc = signal_factory(symbol="BTCUSDT")
    eth = signal_factory(symbol="ETHUSDT", source="ema_cross")
    cop = signal_factory(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200")

    assert _row_ids(logged_in.get("/?market=forex").content.decode()) == [cop.id]
    assert _row_ids(logged_in.get("/?symbol=btcusdt").content.decode()) == [btc.id]
    assert _row_ids(logged_in.get("/?source=ema_cross").content.decode()) == [eth.id]
    assert _row_ids(logged_in.get("/?market=crypto").content.decode()) == [eth.id, btc.id]
    html = logged_in.get("/?market=crypto&symbol=ETHUSDT").content.decode()
    assert _boot(html)["filters"] == {"market": "crypto", "symbol": "ETHUSDT"}
    # The cursor is the newest id overall, not only among the filtered rows, so the
    # live client never replays signals the filters already excluded.
    assert _boot(html)["cursor"] == cop.id
    assert '<option value="crypto" selected>' in html


def test_it_shows_the_empty_state_when_nothing_matches(logged_in, signal_factory):
    signal_factory(symbol="BTCUSDT")
    html = logged_in.get("/?symbol=SOLUSDT").content.decode()
    assert _row_ids(html) == []
    assert 'id="empty-state" class="empty">' in html
    assert "No signals yet for these filters" in html


def test_it_shows_the_empty_state_with_no_signals_at_all(logged_in, instruments):
    html = logged_in.get("/").content.decode()
    assert _row_ids(html) == []
    assert "No signals yet</p>" in html
    assert _boot(html)["cursor"] == 0


def test_it_explains_a_bad_filter_instead_of_failing(logged_in, signal_factory):
    signal = signal_factory()
    response = logged_in.get("/?market=moon")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Market must be one of: crypto, forex." in html and 'role="alert"' in html
    # The bad filter is ignored, the rest of the page still works.
    assert _row_ids(html) == [signal.id]


def test_it_counts_signals_per_hour_for_the_activity_chart(logged_in, signal_factory):
    signal_factory(direction="long")
    signal_factory(direction="short", entry_price="100", stop_loss="110", take_profit="80")
    activity = _boot(logged_in.get("/").content.decode())["activity"]
    assert len(activity) == 24
    assert activity[-1]["long"] == 1 and activity[-1]["short"] == 1
    assert sum(b["long"] + b["short"] for b in activity[:-1]) == 0


def test_it_serves_the_same_snapshot_as_json_for_filter_changes(logged_in, client, signal_factory):
    btc = signal_factory(symbol="BTCUSDT")
    eth = signal_factory(symbol="ETHUSDT")
    body = logged_in.get(reverse("dashboard-snapshot"), {"symbol": "BTCUSDT"}).json()
    assert [s["id"] for s in body["signals"]] == [btc.id]
    assert body["cursor"] == eth.id and body["filters"] == {"symbol": "BTCUSDT"}
    bad = logged_in.get(reverse("dashboard-snapshot"), {"market": "moon"})
    assert bad.status_code == 400 and "market" in bad.json()


def test_it_refuses_the_snapshot_to_anonymous_clients(client):
    response = client.get(reverse("dashboard-snapshot"))
    assert response.status_code == 401


def test_it_serves_the_vendored_chart_library_with_its_licence(logged_in):
    from django.contrib.staticfiles import finders

    assert finders.find("dashboard/vendor/uplot/uPlot.esm.js")
    licence = finders.find("dashboard/vendor/uplot/LICENSE")
    assert licence and "MIT License" in open(licence).read()


def _ids(payloads) -> list[int]:
    return [s["id"] for s in payloads]


def test_it_filters_by_direction_outcome_confidence_and_dates(logged_in, signal_factory):
    from django.utils import timezone

    from signals.services import signal_outcome_close

    long_high = signal_factory(confidence=90)
    short_low = signal_factory(direction="short", entry_price="100", stop_loss="110", take_profit="80", confidence=40)
    won = signal_factory(confidence=60)
    signal_outcome_close(signal_id=won.id, status="tp_hit", exit_price=120)
    today = timezone.now().date()
    get = lambda **q: _ids(logged_in.get(reverse("dashboard-snapshot"), q).json()["signals"])  # noqa: E731

    assert get(direction="short") == [short_low.id]
    assert get(outcome="tp_hit") == [won.id]
    assert get(outcome="open") == [short_low.id, long_high.id]
    assert get(min_confidence="60") == [won.id, long_high.id]
    assert get(date_from=today.isoformat(), date_to=today.isoformat()) == [won.id, short_low.id, long_high.id]
    assert get(date_to=(today - dt.timedelta(days=1)).isoformat()) == []
    assert get(date_from=(today + dt.timedelta(days=1)).isoformat()) == []
    # The server-rendered page applies the same rule.
    assert _row_ids(logged_in.get("/?direction=long&min_confidence=80").content.decode()) == [long_high.id]


def test_it_explains_every_bad_filter_at_once(logged_in, instruments):
    response = logged_in.get(reverse("dashboard-snapshot"), {
        "direction": "up", "outcome": "won", "min_confidence": "101", "date_from": "yesterday",
        "symbol": "BTC-USDT"})
    assert response.status_code == 400
    assert set(response.json()) == {"direction", "outcome", "min_confidence", "date_from", "symbol"}
    reversed_dates = logged_in.get(reverse("dashboard-snapshot"), {"date_from": "2024-05-02", "date_to": "2024-05-01"})
    assert reversed_dates.status_code == 400 and "before the start" in reversed_dates.json()["date_to"][0]


def test_it_pages_back_through_history_without_overlap(logged_in, signal_factory, monkeypatch):
    from dashboard import views

    ids = [signal_factory(direction="long" if i % 2 else "short", entry_price="100",
                          stop_loss="90" if i % 2 else "110", take_profit="120" if i % 2 else "80").id
           for i in range(7)]
    longs = [i for i in reversed(ids) if ids.index(i) % 2]
    monkeypatch.setattr(views, "INITIAL_ROWS", 2)
    monkeypatch.setattr(views, "HISTORY_PAGE", 2)
    first = logged_in.get(reverse("dashboard-snapshot"), {"direction": "long"}).json()
    assert _ids(first["signals"]) == longs[:2] and first["older"] == longs[1]
    seen = _ids(first["signals"])
    older = first["older"]
    while older is not None:
        page = logged_in.get(reverse("dashboard-history"), {"direction": "long", "before": older}).json()
        seen += _ids(page["signals"])
        older = page["older"]
    assert seen == longs
    bad = logged_in.get(reverse("dashboard-history"), {"before": "-1"})
    assert bad.status_code == 400 and "before" in bad.json()


def test_it_exports_the_filtered_view_as_csv_that_imports_back(logged_in, signal_factory, monkeypatch):
    import csv
    import io

    from dashboard import export
    from signals.transfer import import_check, import_read

    monkeypatch.setattr(export, "CHUNK", 2)  # several chunks, one header
    signal_factory(symbol="BTCUSDT")
    eth = [signal_factory(symbol="ETHUSDT", source="ema_crossover", note=f"crossed {i}") for i in range(5)]
    response = logged_in.get(reverse("dashboard-export"), {"market": "crypto", "source": "ema_crossover"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in rows] == [s.id for s in reversed(eth)]
    assert rows[0]["symbol"] == "ETHUSDT" and rows[0]["outcome_status"] == "open" and rows[0]["note"] == "crossed 4"
    # The same format as export_signals: import_signals accepts it (it only checks here).
    plan, _ = import_check(import_read(text, fmt="csv"))  # raises TransferError on any bad row
    assert len(plan) == 5
    empty = b"".join(logged_in.get(reverse("dashboard-export"), {"symbol": "SOLUSDT"}).streaming_content).decode()
    assert empty.count("\n") == 1 and empty.startswith("id,")
    assert logged_in.get(reverse("dashboard-export"), {"outcome": "won"}).status_code == 400


def test_it_opens_the_chart_on_a_symbol_with_data(logged_in, signal_factory):
    from dashboard.tests.market_data import candles_seed

    candles_seed(symbol="ETHUSDT", count=5, last_close=3000)
    signal_factory(symbol="USDCOP", entry_price="4000", stop_loss="3900", take_profit="4200")
    boot = _boot(logged_in.get("/").content.decode())
    # The newest signal's symbol has no candles: the chart opens where there are some.
    assert boot["chart_symbol"] == "ETHUSDT"
    candles_seed(symbol="USDCOP", count=5, last_close=4000)
    assert _boot(logged_in.get("/").content.decode())["chart_symbol"] == "USDCOP"


def test_it_answers_latest_prices_without_errors_for_symbols_without_data(logged_in, instruments):
    from dashboard.tests.market_data import candles_seed

    from pipeline.latest_prices import latest_price_forget

    latest_price_forget(symbol="USDCOP")  # no cached price from another test
    candles_seed(symbol="ETHUSDT", count=3, last_close=3000)
    body = logged_in.get(reverse("dashboard-prices"), {"symbols": "ETHUSDT,usdcop,NOSUCH"}).json()
    assert list(body["prices"]) == ["ETHUSDT"] and body["prices"]["ETHUSDT"]["price"] == "3000"
    too_many = ",".join(["BTCUSDT"] * 51)
    assert logged_in.get(reverse("dashboard-prices"), {"symbols": too_many}).status_code == 400


def test_it_keeps_the_json_reads_from_anonymous_visitors(client):
    for name in ("dashboard-snapshot", "dashboard-history", "dashboard-prices"):
        assert client.get(reverse(name)).status_code == 401
    assert client.get(reverse("dashboard-export")).status_code == 302


def test_it_links_only_the_pages_this_deployment_serves(logged_in, instruments):
    from django.urls import Resolver404, resolve

    html = logged_in.get("/").content.decode()
    assert '<a href="/" aria-current="page">Feed</a>' in html
    for path in ("/webhooks/", "/subscriptions/"):
        try:
            resolve(path)
            served = True
        except Resolver404:
            served = False
        assert (f'href="{path}"' in html) == served


def test_it_reports_feed_status_per_market(logged_in, instruments):
    from dashboard.tests.market_data import candles_seed

    candles_seed(symbol="BTCUSDT", count=3, last_close=100)
    markets = {m["market"]: m for m in logged_in.get(reverse("dashboard-markets")).json()["markets"]}
    assert set(markets) == {"crypto", "forex"}
    assert markets["crypto"]["open"] is True  # crypto trades around the clock
    ages = {s["symbol"]: s["age_seconds"] for s in markets["crypto"]["symbols"]}
    assert ages["ETHUSDT"] is None and 0 <= ages["BTCUSDT"] < 120
    assert [s["symbol"] for s in markets["forex"]["symbols"]] == ["USDCOP"]


def test_it_renders_id_reward_risk_expiry_and_the_stop_in_force_without_javascript(logged_in, signal_factory,
                                                                                  staff_user):
    from django.utils import timezone

    from signals.services import signal_event_create

    signal = signal_factory(entry_price="100", stop_loss="90", take_profit="125",
                            expires_at=timezone.now() + dt.timedelta(hours=3, minutes=5))
    signal_event_create(signal_id=signal.id, event_type="move_stop", price="95", created_by=staff_user)
    html = logged_in.get("/").content.decode()
    row = html[html.index(f'data-id="{signal.id}"'):]
    row = row[:row.index("</tr>")]
    assert f'<span class="sid">#{signal.id}</span>' in row
    assert '<td class="num c-rr">2.5</td>' in row
    assert "in 3h</time>" in row and "UTC" in row  # relative, with the absolute time on hover
    assert "95 (was 90)" in row
