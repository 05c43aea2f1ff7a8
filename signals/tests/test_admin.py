"""Django admin: publish through signal_create with the same validation, read-only after
creation, no delete anywhere; instruments stay editable (but not deletable)."""
from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from signals.models import Instrument, Signal, SignalOutcome

pytestmark = pytest.mark.django_db
ADD_URL = "/admin/signals/signal/add/"
LIST_URL = "/admin/signals/signal/"


def _form(instrument, **overrides):
    data = {"instrument": instrument.pk, "direction": "long", "entry_price": "100", "stop_loss": "90",
            "take_profit": "120", "confidence": "70", "timeframe": "1h", "source": "manual",
            "note": "from admin", "expires_at_0": "", "expires_at_1": ""}
    data.update(overrides)
    return data


def _perm(codename: str) -> Permission:
    return Permission.objects.get(codename=codename, content_type__app_label="signals")


# --- add -----------------------------------------------------------------------------------

def test_it_creates_a_signal_through_the_service(admin_client, admin_user, instruments):
    response = admin_client.post(ADD_URL, _form(instruments["ETHUSDT"]))
    assert response.status_code == 302, response.content.decode()[:2000]
    signal = Signal.objects.select_related("outcome").get()
    # Only signal_create fills these in: created_by, created_at, symbol/market and the outcome row.
    assert (signal.symbol, signal.market, signal.created_by) == ("ETHUSDT", "crypto", admin_user)
    assert signal.created_at is not None and signal.outcome.status == "open"
    assert signal.note == "from admin"


@pytest.mark.parametrize("overrides, field, words", [
    ({"stop_loss": "101"}, "stop_loss", "stop-loss must be below"),
    ({"take_profit": "99"}, "take_profit", "take-profit must be above"),
    ({"direction": "short"}, "stop_loss", "stop-loss must be above"),
    ({"entry_price": "0.00000000001"}, "entry_price", "decimal places"),
    ({"entry_price": "-1"}, "entry_price", ""),
    ({"confidence": "101"}, "confidence", "100"),
    ({"expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}, "expires_at", "future"),
])
def test_it_shows_the_service_errors_on_the_add_form(admin_client, instruments, overrides, field, words):
    response = admin_client.post(ADD_URL, _form(instruments["BTCUSDT"], **overrides))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert field in form.errors, form.errors
    assert words in " ".join(form.errors[field])
    assert words in response.content.decode().replace("&#x27;", "'")
    assert Signal.objects.count() == 0


def test_it_accepts_a_future_expiry_on_the_add_form(admin_client, instruments):
    later = timezone.now() + dt.timedelta(days=2)
    response = admin_client.post(ADD_URL, _form(instruments["BTCUSDT"], expires_at_0=later.strftime("%Y-%m-%d"),
                                                 expires_at_1=later.strftime("%H:%M:%S")))
    assert response.status_code == 302
    assert Signal.objects.get().expires_at.date() == later.date()


def test_it_offers_only_active_instruments(admin_client, instruments):
    Instrument.objects.filter(symbol="SOLUSDT").update(active=False)
    response = admin_client.post(ADD_URL, _form(instruments["SOLUSDT"]))
    assert response.status_code == 200 and "instrument" in response.context["adminform"].form.errors
    assert Signal.objects.count() == 0


# --- read-only after creation --------------------------------------------------------------

def test_it_shows_a_read_only_change_page_with_the_outcome(admin_client, signal_factory):
    signal = signal_factory(note="keep me")
    response = admin_client.get(f"{LIST_URL}{signal.id}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "keep me" in html and "BTCUSDT" in html and "Open" in html
    assert 'name="note"' not in html and 'name="entry_price"' not in html  # no inputs
    assert 'name="_save"' not in html
    assert "/delete/" not in html


def test_it_refuses_a_post_to_the_change_page(admin_client, signal_factory):
    signal = signal_factory(note="keep me")
    response = admin_client.post(f"{LIST_URL}{signal.id}/change/", {
        "note": "edited", "entry_price": "1", "stop_loss": "0.5", "take_profit": "2", "confidence": "1",
        "direction": "long", "instrument": signal.instrument_id, "timeframe": "1h", "source": "x",
        "outcome-TOTAL_FORMS": "1", "outcome-INITIAL_FORMS": "1", "outcome-0-status": "tp_hit",
        "outcome-0-signal": signal.id})
    assert response.status_code == 403
    fresh = Signal.objects.select_related("outcome").get(pk=signal.pk)
    assert (fresh.note, fresh.entry_price, fresh.outcome.status) == ("keep me", 100, "open")


def test_it_has_no_delete_action_or_permission(admin_client, admin_user, signal_factory, rf):
    signal = signal_factory()
    model_admin = admin.site._registry[Signal]
    request = rf.get(LIST_URL)
    request.user = admin_user
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_delete_permission(request, signal) is False
    assert model_admin.has_change_permission(request, signal) is False
    assert "delete_selected" not in model_admin.get_actions(request)
    listing = admin_client.get(LIST_URL)
    assert listing.status_code == 200 and "delete_selected" not in listing.content.decode()
    assert admin_client.get(f"{LIST_URL}{signal.id}/delete/").status_code == 403
    assert admin_client.post(f"{LIST_URL}{signal.id}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [signal.id],
                                        "post": "yes"}).status_code in (200, 302)
    assert Signal.objects.filter(pk=signal.pk).exists() and SignalOutcome.objects.filter(pk=signal.pk).exists()


def test_it_keeps_outcomes_out_of_reach_of_the_admin(admin_client, signal_factory):
    signal_factory()
    assert SignalOutcome not in admin.site._registry
    assert admin_client.get("/admin/signals/signaloutcome/").status_code == 404


# --- list, filters, search -------------------------------------------------------------------

def test_it_lists_filters_and_searches(admin_client, signal_factory):
    eth = signal_factory(symbol="ETHUSDT", note="needle")
    btc = signal_factory(source="ema_cross")
    page = admin_client.get(LIST_URL)
    assert page.status_code == 200
    html = page.content.decode()
    for filter_param in ("?market__exact=", "?source=", "?direction__exact=", "?outcome__status__exact="):
        assert filter_param in html, filter_param
    cl = admin_client.get(f"{LIST_URL}?source=ema_cross").context["cl"]
    assert [s.id for s in cl.result_list] == [btc.id]
    cl = admin_client.get(f"{LIST_URL}?q=needle").context["cl"]
    assert [s.id for s in cl.result_list] == [eth.id]
    cl = admin_client.get(f"{LIST_URL}?outcome__status__exact=open").context["cl"]
    assert {s.id for s in cl.result_list} == {eth.id, btc.id}


@pytest.mark.parametrize("url", [f"{LIST_URL}?q=%00", f"{LIST_URL}?source=%00", "/admin/signals/instrument/?q=a%00"])
def test_it_answers_a_nul_byte_in_an_admin_search_with_400(admin_client, signal_factory, url):
    signal_factory()
    assert admin_client.get(url).status_code == 400


def test_it_lets_view_only_staff_read_but_not_add(django_user_model, signal_factory):
    signal = signal_factory()
    user = django_user_model.objects.create_user("viewer", password="pw-123456", is_staff=True)
    user.user_permissions.add(_perm("view_signal"))
    browser = Client()
    browser.force_login(user)
    assert browser.get(f"{LIST_URL}{signal.id}/change/").status_code == 200
    assert browser.get(ADD_URL).status_code == 403
    assert browser.post(ADD_URL, {}).status_code == 403


def test_it_lets_staff_with_add_permission_publish(django_user_model, instruments):
    user = django_user_model.objects.create_user("publisher", password="pw-123456", is_staff=True)
    user.user_permissions.add(_perm("add_signal"), _perm("view_signal"))
    browser = Client()
    browser.force_login(user)
    assert browser.post(ADD_URL, _form(instruments["BTCUSDT"])).status_code == 302
    assert Signal.objects.get().created_by == user


# --- instruments ------------------------------------------------------------------------------

def test_it_lets_admins_edit_instruments_but_not_delete_them(admin_client, instruments):
    sol = instruments["SOLUSDT"]
    response = admin_client.post(f"/admin/signals/instrument/{sol.pk}/change/", {
        "symbol": "SOLUSDT", "market": "crypto", "base": "SOL", "quote": "USDT", "tick_size": "0.0001"})
    assert response.status_code == 302
    sol.refresh_from_db()
    assert (str(sol.tick_size.normalize()), sol.active) == ("0.0001", False)  # unchecked box = inactive
    assert admin_client.get(f"/admin/signals/instrument/{sol.pk}/delete/").status_code == 403
    assert "delete_selected" not in admin_client.get("/admin/signals/instrument/").content.decode()
    added = admin_client.post("/admin/signals/instrument/add/", {
        "symbol": "XRPUSDT", "market": "crypto", "base": "XRP", "quote": "USDT", "tick_size": "0.0001",
        "active": "on"})
    assert added.status_code == 302 and Instrument.objects.filter(symbol="XRPUSDT", active=True).exists()
