"""Bound the HTTP requests a web process works on at once.

Django runs each request's synchronous part on its own thread, and each thread opens
its own database connection: 100 simultaneous API calls to one process meant 100
PostgreSQL connections, past the server's limit, and answers of 503 to a burst that
the database could easily serve one after another. Requests beyond the limit wait
here for a slot (in arrival order) instead. Long-lived streams (the SSE endpoint)
do not take a slot: they hold no connection while they wait for signals.
"""
from __future__ import annotations

import asyncio
import weakref

from django.conf import settings

_UNLIMITED_PATHS = ("/api/signals/stream/",)
_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _local_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(settings.WEB_MAX_CONCURRENT_REQUESTS)
    return slots


def limit_http_concurrency(inner):
    """ASGI middleware for the "http" scope type."""

    async def app(scope, receive, send):
        if scope.get("path", "").startswith(_UNLIMITED_PATHS):
            return await inner(scope, receive, send)
        async with _local_slots():
            return await inner(scope, receive, send)

    return app
