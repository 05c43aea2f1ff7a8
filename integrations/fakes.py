"""Loopback stand-ins for the remotes deliveries go to: a webhook receiver, the
Telegram Bot API (`/bot<token>/sendMessage`) and Discord's execute-webhook endpoint
(`/api/webhooks/<id>/<token>`), speaking their real request and error shapes
(including 429 with retry-after). Tests and bench/delivery.py aim the real delivery
code at them; nothing here is used in production.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TELEGRAM_PATH = re.compile(r"^/bot(?P<token>[^/]+)/sendMessage$")
_DISCORD_PATH = re.compile(r"^/api/webhooks/(?P<id>[0-9]+)/(?P<token>[A-Za-z0-9_-]+)(\?.*)?$")


@dataclass
class Received:
    kind: str  # webhook | telegram | discord
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real remotes
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per request on keep-alive connections).
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = self.path
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.server.fake
        telegram = _TELEGRAM_PATH.match(path)
        discord = _DISCORD_PATH.match(path)
        kind = "telegram" if telegram else "discord" if discord else "webhook"
        scripted = fake._next_scripted(kind)
        if scripted is not None:
            status, payload, extra = scripted
            fake._record_failure(Received(kind, path, headers, body))
            return self._answer(status, payload, extra)
        if telegram:
            return self._telegram(telegram["token"], body, headers, path)
        if discord:
            return self._discord(body, headers, path)
        fake._record(Received(kind, path, headers, body))
        self._answer(200, {"ok": True})

    def _telegram(self, token, body, headers, path):
        fake = self.server.fake
        if fake.telegram_tokens is not None and token not in fake.telegram_tokens:
            return self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        try:
            message = json.loads(body)
        except ValueError:
            return self._answer(400, {"ok": False, "error_code": 400,
                                      "description": "Bad Request: can't parse JSON object"})
        if not message.get("chat_id"):
            return self._answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if not message.get("text"):
            return self._answer(400, {"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is empty"})
        received = fake._record(Received("telegram", path, headers, body))
        self._answer(200, {"ok": True, "result": {"message_id": received, "date": int(time.time()),
                                                  "chat": {"id": message["chat_id"]}, "text": message["text"]}})

    def _discord(self, body, headers, path):
        fake = self.server.fake
        try:
            message = json.loads(body)
        except ValueError:
            return self._answer(400, {"code": 50109, "message": "The request body contains invalid JSON."})
        if not (message.get("content") or message.get("embeds")):
            return self._answer(400, {"code": 50006, "message": "Cannot send an empty message"})
        received = fake._record(Received("discord", path, headers, body))
        if "wait=true" in path:
            return self._answer(200, {"id": str(received), "content": message.get("content", "")})
        self._answer(204, None)

    def _answer(self, status, payload, extra=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    fake: "FakeRemotes"


def telegram_429(retry_after: int) -> tuple[int, dict, dict]:
    """Telegram's flood-control answer."""
    return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                 "parameters": {"retry_after": retry_after}}, {}


def discord_429(retry_after: float) -> tuple[int, dict, dict]:
    """Discord's rate-limit answer (body and headers)."""
    return 429, {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}, {
        "Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": str(retry_after), "X-RateLimit-Scope": "user"}


class FakeRemotes:
    """One loopback HTTP server playing all three remotes; `script(kind, answers)`
    queues answers (status, json, headers) returned before normal behaviour resumes."""

    def __init__(self, *, telegram_tokens: set[str] | None = None):
        self.telegram_tokens = telegram_tokens
        self.received: list[Received] = []
        self.failed: list[Received] = []
        self._scripts: dict[str, deque] = {"webhook": deque(), "telegram": deque(), "discord": deque()}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-remotes", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeRemotes":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, kind: str, answers) -> None:
        with self._lock:
            self._scripts[kind].extend(answers)

    def _next_scripted(self, kind: str):
        with self._lock:
            queue = self._scripts[kind]
            if not queue:
                return None
            answer = queue.popleft()
        return (answer, {"error": "scripted"}, {}) if isinstance(answer, int) else answer

    def _record(self, received: Received) -> int:
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()
            return len(self.received)

    def _record_failure(self, received: Received) -> None:
        with self._lock:
            self.failed.append(received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` successful requests arrived (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {count} requests arrived within {timeout}s")
                self._arrived.wait(left)
            return list(self.received)
