"""A database outage answers 503 with a clear body, never a 500 page.

PostgreSQL restarting, a failover or a network cut make every query raise
`OperationalError` / `InterfaceError` until the connection is back. That is not a
bug in the request, so the client is told what happened and when to retry: JSON
for the API (and any client that accepts JSON), a short page for browsers. Every
write runs in a transaction, so nothing half-written survives; Django drops the
broken connection at the end of the request and the next request reconnects by
itself once the database is back.

Two doors catch it: the middleware for exceptions raised by views (DRF re-raises
what its handler does not know), and `server_error` (handler500) for anything
raised outside a view, e.g. a session read in a middleware.
"""
from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DETAIL = "The database is temporarily unavailable. Nothing was saved; please retry shortly."
_PAGE = (
    "<!doctype html><title>Temporarily unavailable</title>"
    "<h1>Temporarily unavailable</h1><p>{detail}</p>"
)


def _is_database_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError))


def outage_response(request) -> HttpResponse:
    """The 503 for a request that met a database outage."""
    wants_json = request.path.startswith(("/api/", "/health")) or "json" in request.headers.get("Accept", "")
    if wants_json:
        response = JsonResponse({"detail": DETAIL, "code": "database_unavailable"}, status=503)
    else:
        response = HttpResponse(_PAGE.format(detail=DETAIL), status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseOutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _is_database_outage(exception):
            return None
        # One line, no traceback: an outage is an operational event, not a bug.
        logger.warning("database unavailable during %s %s: %s", request.method, request.path,
                       str(exception).strip().splitlines()[0] if str(exception).strip() else type(exception).__name__)
        return outage_response(request)


def server_error(request, *args, **kwargs):
    """handler500: a 503 when the uncaught exception was a database outage."""
    if _is_database_outage(sys.exc_info()[1]):
        return outage_response(request)
    return defaults.server_error(request, *args, **kwargs)
