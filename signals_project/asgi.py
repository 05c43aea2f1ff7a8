"""ASGI entry point: HTTP goes to Django, WebSockets to the signal consumer.

Authentication (session cookie or `Authorization: Token`) and the Origin check for
cookie-authenticated browsers are resolved by signals.auth before the consumer runs.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from signals.admission import admission_gate  # noqa: E402
from signals.auth import SessionOrTokenAuthMiddleware  # noqa: E402
from signals_project import daphne_patches  # noqa: E402
from signals_project.http_concurrency import limit_http_concurrency  # noqa: E402
from signals_project.warmup import warm_up  # noqa: E402
from signals_project import http_reasons  # noqa: E402
from signals_project.logs import connection_ids  # noqa: E402
from signals.prepared_frames import expose_daphne_protocol, fast_path_enable  # noqa: E402
from signals.routing import websocket_router  # noqa: E402

daphne_patches.apply()
# Probe daphne/Twisted/autobahn once: the fan-out fast path runs only if they match.
fast_path_enable()
# Load lazily imported code and open connections now, not on the first request.
warm_up()
http_reasons.apply()  # "429 Too Many Requests", not "429 Unknown Status"

application = ProtocolTypeRouter(
    {
        "http": limit_http_concurrency(django_asgi_app),
        "websocket": expose_daphne_protocol(
            # Every log line of a connection carries its id (LOG_FORMAT=json: connection_id).
            connection_ids(admission_gate(SessionOrTokenAuthMiddleware(websocket_router)))
        ),
    }
)
