"""Browser pages and the small JSON reads behind them. Thin: parse the filters
(dashboard.forms), read through dashboard.selectors, render; everything live
happens in static/dashboard/js (no build step)."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from pipeline.aggregation import TIMEFRAMES

from .export import csv_chunks
from .forms import PAGE_FILTERS, dashboard_filters_clean
from .selectors import (
    dashboard_chart_symbol, dashboard_filter_choices, dashboard_history, dashboard_markets, dashboard_prices,
    dashboard_signals, dashboard_snapshot,
)

INITIAL_ROWS = 100
HISTORY_PAGE = 100
MAX_PRICE_SYMBOLS = 50


def _client_urls() -> dict[str, str]:
    return {
        "ws": "/ws/signals/",  # routed by Channels, so not reversible
        "stream": reverse("signal-stream"),
        "signals": reverse("signal-list"),
        "candles": reverse("market-candles"),
        "latest": reverse("market-latest"),
        "session": reverse("market-session"),
        "health": reverse("health"),
        "stats": reverse("stats"),
        "login": reverse("login"),
        "snapshot": reverse("dashboard-snapshot"),
        "history": reverse("dashboard-history"),
        "prices": reverse("dashboard-prices"),
        "markets": reverse("dashboard-markets"),
        "export": reverse("dashboard-export"),
        # Served by other apps; the page reads them when they answer and does
        # without when they do not (404 on an older server).
        "me": "/api/me/",
        "strategies": "/api/strategies/",
        "catalog": "/api/strategies/catalog/",
        "browser_prefs": "/api/subscriptions/browser/",
    }


def _unauthorized() -> JsonResponse:
    return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)


def _filters(request) -> tuple[dict[str, str], dict[str, str]]:
    return dashboard_filters_clean({k: request.GET.get(k, "") for k in PAGE_FILTERS})


@login_required
def dashboard(request):
    """The live feed: server-rendered newest signals (filtered by the query string)
    plus what the JS client needs to resume live from exactly there."""
    filters, errors = _filters(request)
    snapshot = dashboard_snapshot(filters=filters, limit=INITIAL_ROWS)
    choices = dashboard_filter_choices()
    preferred = [filters["symbol"]] if filters.get("symbol") else []
    preferred += [s["symbol"] for s in snapshot.signals[:20]]
    user = request.user
    boot = {
        "cursor": snapshot.cursor,
        "event_cursor": snapshot.event_cursor,
        "older": snapshot.older,
        "filters": filters,
        "signals": snapshot.signals,
        "activity": snapshot.activity,
        "instruments": choices["instruments"],
        "chart_symbol": dashboard_chart_symbol(preferred=preferred),
        "timeframes": list(TIMEFRAMES),
        "user": {"username": user.get_username(), "can_publish": user.is_staff or user.has_perm("signals.add_signal")},
        "urls": _client_urls(),
        "csrf_token": get_token(request),  # amendments are POSTed with the session
    }
    context = {
        "signals": snapshot.signals,
        "filters": filters,
        "filter_errors": errors,
        "choices": choices,
        "boot": boot,
        "max_rows": INITIAL_ROWS,
        "timeframes": TIMEFRAMES,
    }
    # A bad filter still renders the page (with the message) but says 400 so that
    # scripts and tests can tell the request was not understood in full.
    return render(request, "dashboard/index.html", context, status=400 if errors else 200)


@require_GET
def snapshot(request):
    """The same snapshot as the page, as JSON: the client swaps filters without a
    reload and resumes the live feed from the returned cursor."""
    if not request.user.is_authenticated:
        return _unauthorized()
    filters, errors = _filters(request)
    if errors:
        return JsonResponse({field: [message] for field, message in errors.items()}, status=400)
    snap = dashboard_snapshot(filters=filters, limit=INITIAL_ROWS)
    return JsonResponse({"cursor": snap.cursor, "event_cursor": snap.event_cursor, "older": snap.older, "filters": filters,
                         "signals": snap.signals, "activity": snap.activity})


@require_GET
def history(request):
    """Older rows for the scroll-back: `?before=<id>` plus the page's filters."""
    if not request.user.is_authenticated:
        return _unauthorized()
    filters, errors = _filters(request)
    raw = request.GET.get("before", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        errors["before"] = "before must be a signal id (a non-negative integer)."
    if errors:
        return JsonResponse({field: [message] for field, message in errors.items()}, status=400)
    signals, older = dashboard_history(filters=filters, before=int(raw), limit=HISTORY_PAGE)
    return JsonResponse({"signals": signals, "older": older})


@require_GET
def prices(request):
    """Latest prices for `?symbols=A,B,...` (the open signals on screen): their live
    distance to entry and unrealized R. Symbols without a price are left out."""
    if not request.user.is_authenticated:
        return _unauthorized()
    symbols = [s.strip().upper() for s in request.GET.get("symbols", "").split(",") if s.strip()]
    if len(symbols) > MAX_PRICE_SYMBOLS:
        return JsonResponse({"symbols": [f"At most {MAX_PRICE_SYMBOLS} symbols per request."]}, status=400)
    return JsonResponse({"prices": dashboard_prices(symbols=list(dict.fromkeys(symbols)))})


@require_GET
def markets(request):
    """Feed status per market (session, readiness, data age per symbol)."""
    if not request.user.is_authenticated:
        return _unauthorized()
    return JsonResponse({"markets": dashboard_markets()})


@login_required
@require_GET
def export_csv(request):
    """Every signal of the filtered view as CSV, newest first, streamed; the format
    of `manage.py export_signals`, so `import_signals` reads it back."""
    filters, errors = _filters(request)
    if errors:
        return JsonResponse({field: [message] for field, message in errors.items()}, status=400)
    response = StreamingHttpResponse(csv_chunks(dashboard_signals(filters=filters)), content_type="text/csv")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="signals-{stamp}.csv"'
    return response
