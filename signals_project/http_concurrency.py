"""Bound the HTTP requests a web process works on at once.

Django runs each request's synchronous part on its own thread, and each thread holds
a database connection while it works: 100 simultaneous API calls to one process meant
100 PostgreSQL connections, past the server's limit, and answers of 503 to a burst
that the database could easily serve one after another. Requests beyond the limit
wait here for a slot (in arrival order) instead, so the process's connection pool
(DB_POOL_MAX_SIZE, larger than this limit) is not drained by HTTP alone. Long-lived streams (the SSE endpoint)
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


class RequestOnOneThread:
    """Innermost middleware, synchronous only: run the whole middleware chain and the
    (synchronous, DRF) view on the request's one thread.

    Why: Django builds the chain from the inside out and keeps each middleware that
    can run async in async mode until it meets a sync-only one (WhiteNoise). Every
    `MiddlewareMixin` below that point (sessions, CSRF, auth, messages, axes) then hops
    to a thread for its `process_request` and back for `process_response`: 16 thread
    hops per API call, ~3 ms of a 9 ms POST (bench/fanout.py --e2e, yappi). With a
    sync-only middleware innermost, everything outside it runs sync on one thread and
    only the handler's own call crosses back to the event loop once. Async views
    (none on the HTTP side today) would still run on the loop.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
