"""WebSocket authentication: the browser's session cookie, or an API client's
`Authorization: Token <key>` header (DRF authtoken), resolved before the consumer.

The Origin check exists to stop a foreign page from riding a browser's ambient
session cookie. A token client carries no ambient credential (a page cannot set an
Authorization header on a WebSocket), so bots and command-line clients that send
no Origin at all are accepted; an Origin that IS sent must still be an allowed host.
"""
from __future__ import annotations

import asyncio

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from .delivery import db_read


@db_read
def _user_for_token_query(key: str):
    # From the user side, so no Token instance stays cached on the user for the
    # life of the connection.
    return get_user_model().objects.filter(auth_token__key=key, is_active=True).first()


_lookups: dict[str, asyncio.Task] = {}


async def user_for_token(key: str):
    """The active user owning this DRF token, or None.

    Concurrent lookups of one key share a single query: in a reconnect storm a
    bot fleet often reconnects hundreds of sockets with the same token at once.
    Nothing is cached beyond the query in flight, so a revoked token stops working
    for the next handshake.
    """
    loop = asyncio.get_running_loop()
    task = _lookups.get(key)
    if task is None or task.get_loop() is not loop:
        task = _lookups[key] = loop.create_task(_user_for_token_query(key))
        task.add_done_callback(lambda done: _lookups.pop(key, None) if _lookups.get(key) is done else None)
    return await asyncio.shield(task)


def token_from_header(header: str) -> str | None:
    """The key of an `Authorization: Token <key>` header, or None when malformed."""
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "token":
        return parts[1]
    return None


async def user_for_authorization(header: str):
    """The user an Authorization header names, or None (malformed, unknown, inactive).
    A header that is present but wrong never falls back to a session cookie."""
    key = token_from_header(header)
    if key is None:
        return None
    return await user_for_token(key)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SessionOrTokenAuthMiddleware:
    """`Authorization: Token` clients are resolved by their token alone; everyone
    else goes through the Origin check and channels' cookie/session/auth stack.

    Token clients never touch the session stack: a header that is present but wrong
    must not fall back to a cookie, and API clients (often thousands of bots) then
    carry no session objects for the life of their connection.
    """

    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))
        self.token_with_origin = AllowedHostsOriginValidator(self._token_app)

    async def __call__(self, scope, receive, send):
        if _header(scope, b"authorization") is None:
            return await self.session_stack(scope, receive, send)
        if _header(scope, b"origin") is None:
            return await self._token_app(scope, receive, send)
        return await self.token_with_origin(scope, receive, send)

    async def _token_app(self, scope, receive, send):
        user = await user_for_authorization(_header(scope, b"authorization") or "")
        # Extended in place rather than copied: outer layers do not reuse the scope,
        # and a copy would stay alive per connection in this coroutine's frame.
        scope["user"] = user or AnonymousUser()
        scope["auth_method"] = "token"
        return await self.inner(scope, receive, send)
