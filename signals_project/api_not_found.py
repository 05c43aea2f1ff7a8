"""handler404: an API path that matches no route answers JSON, like every other API
error (`/api/signals/0.5/` is a 404, not an HTML page a client cannot parse).
Pages outside /api/ keep Django's page."""
from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
