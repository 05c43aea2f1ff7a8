"""ASGI entry point: HTTP goes to Django, WebSockets to the signal consumer.

Each WebSocket connection runs as one coroutine, signals.routing.websocket_door:
admission, authentication (session cookie or `Authorization: Token`) and the Origin
check for cookie-authenticated browsers are plain functions it calls before the
consumer runs, not middleware layers that would stay suspended per connection.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
django_asgi_app = get_asgi_application()

from asgiref.sync import markcoroutinefunction  # noqa: E402

from signals_project import daphne_patches  # noqa: E402
from signals_project.http_concurrency import limit_http_concurrency  # noqa: E402
from signals_project.warmup import warm_up  # noqa: E402
from signals_project import http_reasons  # noqa: E402
from signals.prepared_frames import fast_path_enable  # noqa: E402
from signals.receive_queue import receive_queue_enable  # noqa: E402
from signals.routing import websocket_door  # noqa: E402

daphne_patches.apply()
# Probe daphne/Twisted/autobahn once: the fan-out fast path runs only if they match,
# and so does the small receive queue for WebSockets.
fast_path_enable()
receive_queue_enable()
# Load lazily imported code and open connections now, not on the first request.
warm_up()
http_reasons.apply()  # "429 Too Many Requests", not "429 Unknown Status"

_apps = {
    "http": limit_http_concurrency(django_asgi_app),
    "websocket": websocket_door,
}


@markcoroutinefunction
def application(scope, receive, send):
    """Route by protocol type, as channels' ProtocolTypeRouter does, but hand back
    the app's own coroutine instead of awaiting it in one more: a router frame would
    stay suspended for the life of every WebSocket connection."""
    app = _apps.get(scope["type"])
    if app is None:
        return _unknown_type(scope["type"])
    return app(scope, receive, send)


async def _unknown_type(scope_type: str) -> None:
    raise ValueError("No application configured for scope type %r" % scope_type)
