"""Structured logs: request and connection ids on every line, and no secret ever written.

Why here: every process (web, worker, beat, feed) logs through settings.LOGGING,
which attaches the two filters below to the console handler. `LOG_FORMAT=json`
writes one JSON object per line (python-json-logger) for log shippers; text
stays the default for people.

- `ContextFilter` adds `request_id` and `connection_id` from context variables:
  `RequestIdMiddleware` binds the first for each HTTP request (honouring a sane
  incoming `X-Request-ID`, echoing it in the response), `connection_id_bind` binds the
  second for each WebSocket connection. Context variables follow the request into
  sync_to_async threads and tasks, so a log line deep in a service still carries them.
- `RedactingFilter` rewrites the final message and any traceback text: API tokens
  (`Token …`, `Bearer …`), webhook secrets (`whsec_…`), Telegram bot tokens, Discord
  webhook tokens, and `password=` / `secret=` / `token=` / `key=` values become
  `[redacted]`. It runs on the handler, so a secret passed as a %-argument is
  caught too.
"""
from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
connection_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("connection_id", default="-")

_REDACTED = "[redacted]"
_SECRET_PATTERNS = [
    # Authorization headers and their like: "Token abc...", "Bearer abc..."
    (re.compile(r"\b(Token|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1 {_REDACTED}"),
    # Standard Webhooks signing secrets
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{_REDACTED}"),
    # Telegram bot tokens (123456789:AA...), also inside API URLs (/bot<token>/)
    (re.compile(r"(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}"), _REDACTED),
    # Discord webhook URLs: /webhooks/<id>/<token>
    (re.compile(r"(/webhooks/\d+/)[A-Za-z0-9_.-]+"), rf"\1{_REDACTED}"),
    # key=value and "key": "value" forms of passwords, secrets, tokens and API keys
    (re.compile(r"""(?i)(["']?\b(?:password|passwd|secret|token|api[_-]?key|apikey|auth|signature)\w*["']?"""
                r"""\s*[=:]\s*["']?)[^\s"'&,;}]+"""), rf"\1{_REDACTED}"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def redact(text: str) -> str:
    """`text` with every secret pattern above replaced by [redacted]."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds `request_id` and `connection_id` ("-" outside a request/connection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs a response after the middleware returned; its record
        # carries the request, which carries the id.
        record.request_id = getattr(getattr(record, "request", None), "request_id", None) or request_id_var.get()
        record.connection_id = connection_id_var.get()
        return True


class RedactingFilter(logging.Filter):
    """Redacts secrets from the formatted message and from traceback text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken %-format is logged as is, never raised
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            # Formatters re-render exc_info when it is there; leave them only the
            # redacted text.
            record.exc_text, record.exc_info = redact(record.exc_text), None
        return True


class HealthPollFilter(logging.Filter):
    """Drops django.request's "Service Unavailable: /health/..." line: a 503 there is
    the answer a load balancer polls for every few seconds, not a server error (the
    health task logs the reasons once per check instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503
                    and getattr(request, "path", "").startswith("/health/"))


class RequestIdMiddleware:
    """Binds a request id for the request's log lines and returns it as X-Request-ID."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _bind(self, request) -> tuple[str, contextvars.Token]:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        return request_id, request_id_var.set(request_id)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request_id, token = self._bind(request)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response

    async def __acall__(self, request):
        request_id, token = self._bind(request)
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


def connection_id_bind() -> None:
    """Give the running task's WebSocket connection its own id for its log lines.
    Call it inside the connection's own task: the binding then ends with the task,
    with nothing to reset (signals.routing calls it first thing)."""
    connection_id_var.set(f"ws-{uuid.uuid4().hex[:12]}")


def connection_ids(app):
    """ASGI middleware form of `connection_id_bind`, for an app awaited inside a task
    that outlives the connection: the id is bound around the app and reset after."""

    async def wrapped(scope: dict[str, Any], receive, send):
        if scope.get("type") != "websocket":
            return await app(scope, receive, send)
        token = connection_id_var.set(f"ws-{uuid.uuid4().hex[:12]}")
        try:
            return await app(scope, receive, send)
        finally:
            connection_id_var.reset(token)

    return wrapped
