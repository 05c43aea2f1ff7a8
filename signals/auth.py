"""WebSocket authentication: the browser's session cookie, or an API client's
`Authorization: Token <key>` header (DRF authtoken), resolved before the consumer."""
from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.contrib.auth.models import AnonymousUser

from .delivery import db_read


@db_read
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class _TokenAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        header = _header(scope, b"authorization")
        if header:
            parts = header.split()
            user = None
            if len(parts) == 2 and parts[0].lower() == "token":
                user = await _user_for_token(parts[1])
            # A header that is present but wrong must not fall back to the cookie.
            scope = dict(scope, user=user or AnonymousUser(), auth_method="token")
        return await self.inner(scope, receive, send)


def SessionOrTokenAuthMiddleware(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    """Session auth first (sets scope['user']); a token header then overrides it."""
    return AuthMiddlewareStack(_TokenAuthMiddleware(inner))
