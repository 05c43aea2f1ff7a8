"""ASGI entry point: HTTP goes to Django, WebSockets to the signal consumer.

Origin is checked against ALLOWED_HOSTS; authentication (session cookie or
`Authorization: Token`) is resolved by our middleware before the consumer runs.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from signals.auth import SessionOrTokenAuthMiddleware  # noqa: E402
from signals_project import daphne_patches  # noqa: E402
from signals.fastsend import expose_daphne_protocol  # noqa: E402
from signals.routing import websocket_router  # noqa: E402

daphne_patches.apply()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": expose_daphne_protocol(
            AllowedHostsOriginValidator(SessionOrTokenAuthMiddleware(websocket_router))
        ),
    }
)
