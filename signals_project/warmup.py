"""Warm a web process up before it takes traffic.

Django, DRF and our apps load much of their code on first use: the first request
after a start measured ~250-340 ms against ~10 ms for the next ones (imports of
views, serializers, the database driver's adapters, the first Redis connection and
the doorbell publisher's thread). Doing that work at startup means no client ever
pays it. Nothing here writes; a failure (database or Redis still down) is logged
and the process starts anyway.
"""
from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.urls import get_resolver

from signals_project.celery import app as celery_app

logger = logging.getLogger(__name__)

_PATHS = ("/api/signals/", "/api/signals/1/", "/api/signals/stream/", "/api/me/", "/health/", "/")


def warm_up() -> None:
    resolver = get_resolver()
    for path in _PATHS:
        try:
            resolver.resolve(path)
        except Exception:  # noqa: BLE001 - a route another deployment does not have
            pass
    try:
        from rest_framework.authtoken.models import Token

        from signals import broadcast
        from signals.selectors import signal_max_id

        Token.objects.filter(key="").exists()
        signal_max_id()
        cache.get("warm-up")
        broadcast.publisher_warm_up()
        # Receivers of signal_published enqueue Celery tasks from the POST: open the
        # broker connection of the pool they use (measured ~50 ms on first use).
        with celery_app.pool.acquire(block=True) as broker:
            broker.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - a dependency still starting: serve anyway
        logger.warning("warm-up incomplete (%r); the first requests will be slower", exc)
    finally:
        # The startup thread's connection is not the request threads' one: close it.
        connection.close()
