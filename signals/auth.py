"""WebSocket authentication: the browser's session cookie, or an API client's
`Authorization: Token <key>` header (DRF authtoken), resolved before the consumer."""
from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.contrib.auth.models import AnonymousUser

from .delivery import db_read


@db_read
def user_for_token(key: str):
    """The active user owning this DRF token, or None. Queried from the user side so
    no Token instance stays cached on the user for the life of the connection."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(auth_token__key=key, is_active=True).first()


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SessionOrTokenAuthMiddleware:
    """`Authorization: Token` clients are resolved by their token alone; everyone
    else goes through channels' cookie/session/auth stack.

    Token clients never touch the session stack: a header that is present but wrong
    must not fall back to a cookie, and API clients (often thousands of bots) then
    carry no session objects for the life of their connection.
    """

    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        header = _header(scope, b"authorization")
        if header is None:
            return await self.session_stack(scope, receive, send)
        parts = header.split()
        user = None
        if len(parts) == 2 and parts[0].lower() == "token":
            user = await user_for_token(parts[1])
        # Extended in place rather than copied: outer layers do not reuse the scope,
        # and a copy would stay alive per connection in this coroutine's frame.
        scope["user"] = user or AnonymousUser()
        scope["auth_method"] = "token"
        return await self.inner(scope, receive, send)
