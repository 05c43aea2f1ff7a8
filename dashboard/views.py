"""Browser pages. Thin: read a snapshot through dashboard.selectors and render it;
everything live happens in static/dashboard/js (no build step)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse

from .selectors import PAGE_FILTERS, dashboard_filter_choices, dashboard_filters_clean, dashboard_snapshot

INITIAL_ROWS = 100


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
    }


@login_required
def dashboard(request):
    """The live feed: server-rendered newest signals (filtered by the query string)
    plus what the JS client needs to resume live from exactly there."""
    filters, errors = dashboard_filters_clean({k: request.GET.get(k, "") for k in PAGE_FILTERS})
    snapshot = dashboard_snapshot(filters=filters, limit=INITIAL_ROWS)
    choices = dashboard_filter_choices()
    boot = {
        "cursor": snapshot.cursor,
        "filters": filters,
        "signals": snapshot.signals,
        "activity": snapshot.activity,
        "instruments": choices["instruments"],
        "urls": _client_urls(),
    }
    context = {
        "signals": snapshot.signals,
        "filters": filters,
        "filter_errors": errors,
        "choices": choices,
        "boot": boot,
        "max_rows": INITIAL_ROWS,
    }
    # A bad filter still renders the page (with the message) but says 400 so that
    # scripts and tests can tell the request was not understood in full.
    return render(request, "dashboard/index.html", context, status=400 if errors else 200)


def snapshot(request):
    """The same snapshot as the page, as JSON: the client swaps filters without a
    reload and resumes the live feed from the returned cursor."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    filters, errors = dashboard_filters_clean({k: request.GET.get(k, "") for k in PAGE_FILTERS})
    if errors:
        return JsonResponse({field: [message] for field, message in errors.items()}, status=400)
    snap = dashboard_snapshot(filters=filters, limit=INITIAL_ROWS)
    return JsonResponse({"cursor": snap.cursor, "filters": filters, "signals": snap.signals,
                         "activity": snap.activity})
