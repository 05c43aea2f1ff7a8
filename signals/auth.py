"""WebSocket authentication: the browser's session cookie, or an API client's
`Authorization: Token <key>` header (DRF authtoken), resolved by the WebSocket door
(signals.routing) before the consumer connects.

The Origin check exists to stop a foreign page from riding a browser's ambient
session cookie. A token client carries no ambient credential (a page cannot set an
Authorization header on a WebSocket), so bots and command-line clients that send
no Origin at all are accepted; an Origin that IS sent must still be an allowed host.
"""
from __future__ import annotations

import asyncio
from importlib import import_module
from urllib.parse import urlparse

from channels.auth import get_user
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie

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


def _allowed_origins() -> list[str]:
    # What channels' AllowedHostsOriginValidator allows.
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return allowed_hosts


def websocket_origin_allowed(scope) -> bool:
    """False when the handshake must be refused for its Origin: a cookie session
    needs an allowed Origin; a token client needs none, but one it sends must be an
    allowed host. Same rule and matching as channels' AllowedHostsOriginValidator."""
    if _header(scope, b"authorization") is not None and _header(scope, b"origin") is None:
        return True
    parsed_origin = None
    for name, value in scope.get("headers", []):
        if name == b"origin":
            try:
                parsed_origin = urlparse(value.decode("latin1"))
            except UnicodeDecodeError:
                pass
    return OriginValidator(None, _allowed_origins()).valid_origin(parsed_origin)


async def websocket_user(scope):
    """The user of a WebSocket handshake (AnonymousUser when nobody is signed in).

    `Authorization: Token` clients are resolved by their token alone: a header that
    is present but wrong never falls back to a session cookie. Everyone else by the
    session cookie, as channels' AuthMiddlewareStack would.

    A plain function rather than middleware: middleware stays suspended for the life
    of the connection, each layer with its own copy of the scope (and the session
    objects), and memory per idle connection is a benchmark target (BENCHMARKS.md)."""
    header = _header(scope, b"authorization")
    if header is not None:
        return await user_for_authorization(header) or AnonymousUser()
    return await _user_for_session(scope)


async def _user_for_session(scope):
    # channels' CookieMiddleware + SessionMiddleware + AuthMiddleware, without keeping
    # any of them (or the session) once the user is known.
    cookies: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies = parse_cookie(value.decode("latin1"))
            break
    session = import_module(settings.SESSION_ENGINE).SessionStore(cookies.get(settings.SESSION_COOKIE_NAME))
    return await get_user({"session": session})
