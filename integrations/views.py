"""Pages to manage one's channels and filters (`/subscriptions/`) and webhook
endpoints with their recent deliveries (`/webhooks/`). Thin: the pages render a
skeleton and plain JS drives the same REST API that bots use."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from signals.models import Market

from .models import EVENT_TYPES


def _boot() -> dict:
    return {
        "urls": {
            "webhooks": reverse("webhook-list"),
            "channels": reverse("channel-list"),
            "browser": reverse("browser-preference"),
        },
        "events": list(EVENT_TYPES),
        "markets": list(Market.values),
    }


@login_required
@ensure_csrf_cookie
def subscriptions_page(request):
    return render(request, "integrations/subscriptions.html", {"boot": _boot()})


@login_required
@ensure_csrf_cookie
def webhooks_page(request):
    return render(request, "integrations/webhooks.html", {"boot": _boot()})
