"""GET /api/signals/ (cursor pages, filters, after_id catch-up), detail, 405 for every
write verb, /api/schema/ and the browsable API."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from signals.models import Signal

pytestmark = pytest.mark.django_db
URL = "/api/signals/"


@pytest.fixture
def mixed_signals(signal_factory):
    """Nine signals across symbols, markets, sources and directions, oldest first."""
    made = []
    for i in range(9):
        symbol = ("BTCUSDT", "ETHUSDT", "USDCOP")[i % 3]
        short = i % 2 == 1
        made.append(signal_factory(
            symbol=symbol, direction="short" if short else "long",
            entry_price="100", stop_loss="110" if short else "90", take_profit="80" if short else "120",
            source="manual" if i < 5 else "ema_cross",
        ))
    return made


def _walk(client, url: str) -> tuple[list[int], int]:
    """Follow `next` links; return every id seen and the number of pages."""
    ids, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [row["id"] for row in body["results"]]
        pages += 1
        url = body["next"]
        assert pages < 50, "next links loop"
    return ids, pages


# --- list --------------------------------------------------------------------------------------

def test_it_lists_newest_first_in_cursor_pages_without_duplicates(reader_client, mixed_signals):
    ids, pages = _walk(reader_client, f"{URL}?page_size=4")
    assert ids == sorted((s.id for s in mixed_signals), reverse=True)
    assert pages == 3


def test_it_does_not_shift_cursor_pages_when_new_signals_arrive(reader_client, mixed_signals, signal_factory):
    first = reader_client.get(f"{URL}?page_size=4").json()
    newer = [signal_factory().id for _ in range(3)]  # would shift an OFFSET page by 3
    rest, _ = _walk(reader_client, first["next"])
    seen = [row["id"] for row in first["results"]] + rest
    assert seen == sorted((s.id for s in mixed_signals), reverse=True)
    assert not set(newer) & set(seen)


def test_it_pages_by_50_by_default_and_caps_page_size(reader_client, signal_factory):
    for _ in range(51):
        signal_factory()
    body = reader_client.get(URL).json()
    assert len(body["results"]) == 50 and body["next"]
    assert len(reader_client.get(f"{URL}?page_size=100000").json()["results"]) == 51


def test_it_answers_a_forged_cursor_with_404_not_500(reader_client, mixed_signals):
    response = reader_client.get(f"{URL}?cursor=not-a-cursor")
    assert response.status_code == 404


@pytest.mark.parametrize("query, expected", [
    ("symbol=ETHUSDT", lambda s: s.symbol == "ETHUSDT"),
    ("symbol=ethusdt", lambda s: s.symbol == "ETHUSDT"),
    ("market=forex", lambda s: s.market == "forex"),
    ("market=crypto", lambda s: s.market == "crypto"),
    ("source=ema_cross", lambda s: s.source == "ema_cross"),
    ("direction=short", lambda s: s.direction == "short"),
    ("market=crypto&direction=long&source=manual",
     lambda s: s.market == "crypto" and s.direction == "long" and s.source == "manual"),
    ("symbol=DOGEUSDT", lambda s: False),
    ("market=", lambda s: True),
])
def test_it_filters_the_list(reader_client, mixed_signals, query, expected):
    ids, _ = _walk(reader_client, f"{URL}?{query}&page_size=2")
    assert ids == [s.id for s in reversed(mixed_signals) if expected(s)]


@pytest.mark.parametrize("query", ["symbol=%00", "market=crypto%00", "source=a%00b", "direction=%00",
                                   "after_id=0&symbol=%00"])
def test_it_answers_a_nul_byte_in_a_filter_with_an_empty_page_not_500(reader_client, mixed_signals, query):
    response = reader_client.get(f"{URL}?{query}")
    assert response.status_code == 200
    assert response.json()["results"] == []


# --- after_id catch-up -------------------------------------------------------------------------

def test_it_catches_up_after_an_id_oldest_first_following_next(reader_client, mixed_signals):
    after = mixed_signals[1].id
    ids, pages = _walk(reader_client, f"{URL}?after_id={after}&page_size=3")
    assert ids == [s.id for s in mixed_signals[2:]]
    assert pages == 3  # 3 + 3 + 1 rows


def test_it_catches_up_with_filters(reader_client, mixed_signals):
    response = reader_client.get(f"{URL}?after_id={mixed_signals[0].id}&source=ema_cross&market=crypto")
    body = response.json()
    assert [r["id"] for r in body["results"]] == [
        s.id for s in mixed_signals[1:] if s.source == "ema_cross" and s.market == "crypto"]
    assert body["next"] is None and body["previous"] is None


def test_it_gives_an_empty_catch_up_after_the_newest_id(reader_client, mixed_signals):
    body = reader_client.get(f"{URL}?after_id={mixed_signals[-1].id}").json()
    assert body == {"next": None, "previous": None, "results": []}


def test_it_keeps_the_other_query_parameters_in_the_catch_up_next_link(reader_client, mixed_signals):
    body = reader_client.get(f"{URL}?after_id=0&page_size=2&direction=long").json()
    query = parse_qs(urlparse(body["next"]).query)
    assert query == {"after_id": [str(body["results"][-1]["id"])], "page_size": ["2"], "direction": ["long"]}


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "0x10", "1e3"])
def test_it_answers_a_bad_after_id_with_400(reader_client, mixed_signals, value):
    response = reader_client.get(f"{URL}?after_id={value}")
    assert response.status_code == 400
    assert list(response.json()) == ["after_id"]


@pytest.mark.parametrize("value", [2**63, 10**30])
def test_it_answers_an_after_id_beyond_bigint_with_400(reader_client, mixed_signals, value):
    response = reader_client.get(f"{URL}?after_id={value}")
    assert response.status_code == 400
    assert response.json() == {"after_id": [f"Must be a non-negative integer of at most {2**63 - 1}."]}


def test_it_accepts_the_largest_bigint_after_id(reader_client, mixed_signals):
    response = reader_client.get(f"{URL}?after_id={2**63 - 1}")
    assert response.status_code == 200 and response.json()["results"] == []


# --- detail ------------------------------------------------------------------------------------

def test_it_shows_one_signal(reader_client, mixed_signals):
    signal = mixed_signals[4]
    body = reader_client.get(f"{URL}{signal.id}/").json()
    assert body["id"] == signal.id and body["symbol"] == signal.symbol and body["outcome"]["status"] == "open"


@pytest.mark.parametrize("lookup", ["999999999", "abc", str(10 ** 30), "-1"])
def test_it_answers_a_missing_signal_with_404(reader_client, mixed_signals, lookup):
    assert reader_client.get(f"{URL}{lookup}/").status_code == 404


# --- no editing through the API ----------------------------------------------------------------

@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_answers_405_to_every_write_verb_on_list_and_detail(staff_client, mixed_signals, method):
    signal = mixed_signals[0]
    for url in (URL, f"{URL}{signal.id}/"):
        response = getattr(staff_client, method)(url, {"note": "edited", "confidence": 1}, format="json")
        assert response.status_code == 405, (url, response.content)
    assert Signal.objects.count() == len(mixed_signals)
    fresh = Signal.objects.get(pk=signal.pk)
    assert (fresh.note, fresh.confidence) == (signal.note, signal.confidence)


def test_it_answers_405_to_a_post_on_a_detail_url(staff_client, mixed_signals):
    assert staff_client.post(f"{URL}{mixed_signals[0].id}/", {}, format="json").status_code == 405


# --- schema and browsable API ------------------------------------------------------------------

def test_it_serves_an_openapi_3_schema_of_the_contract(db):
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert set(paths["/api/signals/"]) >= {"get", "post"}
    assert set(paths["/api/signals/{id}/"]) == {"get", "parameters"} or set(paths["/api/signals/{id}/"]) == {"get"}
    listed = {p["name"] for p in paths["/api/signals/"]["get"]["parameters"]}
    assert {"symbol", "market", "source", "direction", "after_id", "cursor", "page_size"} <= listed
    post = paths["/api/signals/"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    assert "201" in post["responses"]


def test_it_renders_the_browsable_api_for_a_logged_in_browser(staff_user, mixed_signals):
    browser = Client()
    assert browser.login(username="staff", password="staff-pass-123")
    page = browser.get(URL, HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert "Signal" in html and f"&quot;id&quot;: {mixed_signals[-1].id}," in html
    assert 'id="post-generic-content-form"' in html  # staff get the POST form
    detail = browser.get(f"{URL}{mixed_signals[0].id}/", HTTP_ACCEPT="text/html")
    assert detail.status_code == 200 and f"&quot;id&quot;: {mixed_signals[0].id}," in detail.content.decode()
    catch_up = browser.get(f"{URL}?after_id=0", HTTP_ACCEPT="text/html")
    assert catch_up.status_code == 200


def test_it_renders_the_browsable_api_for_a_reader(reader_user, mixed_signals):
    browser = Client()
    browser.force_login(reader_user)
    page = browser.get(URL, HTTP_ACCEPT="text/html")
    html = page.content.decode()
    assert page.status_code == 200 and f"&quot;id&quot;: {mixed_signals[0].id}," in html
    assert 'id="post-generic-content-form"' not in html  # readers may not publish
