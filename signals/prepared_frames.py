"""Broadcast fast path under daphne: frame a doorbell once, write it to many sockets.

Going through ASGI, every client's copy of a frame travels consumer.send ->
session wrapper -> daphne.handle_reply -> autobahn.sendMessage, which re-frames
the same payload each time; bench/fanout.py measured that chain as most of the
per-client cost at 2,000 clients. autobahn has a public API for exactly this case,
`factory.prepareMessage()` ("frame once, send to many"). ASGI hides the autobahn
protocol object, so the WebSocket door (signals.routing) takes it from daphne's
`send` (`daphne_protocol`) when the server is daphne.

This leans on details of daphne, Twisted and autobahn that are not their public
API, so they are fenced: `fast_path_probe()` checks every one of them once at
startup (asgi.py). If anything is missing the protocol is never exposed, every
frame goes through plain ASGI sends, and a WARNING names what changed. A write that
fails at run time is reported to the hub, which closes that client so it resumes
from its own last id (see Hub.fan_out).
"""
from __future__ import annotations

import functools
import inspect
import logging
import socket
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

SCOPE_KEY = "signals.websocket_protocol"
_PROBE_PAYLOAD = b"probe"
# RFC 6455 text frame, FIN set, unmasked, 5-byte payload: what a server must send.
_PROBE_FRAME = b"\x81\x05" + _PROBE_PAYLOAD
_TRANSPORT_FIELDS = ("socket", "dataBuffer", "_tempDataBuffer", "_tempDataLen", "offset", "connected",
                     "disconnecting", "TLS", "write")


class SlowClientError(ConnectionError):
    """A client that does not read: its unsent frames passed WS_MAX_BUFFER_BYTES."""


def buffered_bytes(transport) -> int:
    """Bytes Twisted holds for this socket because the client has not read them."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class ProbedPath:
    """A path that relies on daphne/Twisted/autobahn internals: on only if its probe
    passed in this process (decided once at startup), with what was missing if not."""

    def __init__(self, *, on: str, off: str, log: logging.Logger) -> None:
        self.enabled = False
        self.missing: tuple[str, ...] = ("not probed",)
        self._on, self._off, self._log = on, off, log

    def decide(self, missing: list[str]) -> bool:
        """Record the probe's verdict and log it (WARNING when the path is off)."""
        self.missing = tuple(missing)
        self.enabled = not missing
        if missing:
            self._log.warning("%s: %s", self._off, "; ".join(missing))
        else:
            self._log.info(self._on)
        return self.enabled


_FastPath = ProbedPath(on="WebSocket fan-out fast path on: prepared frames written straight to daphne's sockets",
                       off="WebSocket fan-out fast path OFF, using plain ASGI sends", log=logger)


def fast_path_probe() -> list[str]:
    """Check every daphne/Twisted/autobahn detail the fast path relies on. Returns
    what is missing or changed (empty when the fast path is safe to use)."""
    try:
        from autobahn.twisted.websocket import WebSocketServerFactory
        from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import tcp, task
    except ImportError as exc:
        return [f"import failed: {exc}"]
    missing: list[str] = []
    # daphne hands each application `send=partial(server.handle_reply, protocol)`:
    # that partial is where expose_daphne_protocol finds the protocol.
    if "partial(self.handle_reply, protocol)" not in inspect.getsource(Server.create_application):
        missing.append("daphne Server.create_application no longer sends partial(handle_reply, protocol)")
    missing.extend(
        f"daphne WebSocketProtocol.{name}"
        for name in ("STATE_OPEN", "sendPreparedMessage", "transport", "factory")
        if not hasattr(WebSocketProtocol, name)
    )
    # Per-message compression needs per-connection framing; its flag is private.
    if "self._perMessageCompress" not in inspect.getsource(AutobahnProtocol._connectionMade):
        missing.append("autobahn WebSocketProtocol._perMessageCompress")
    try:
        prepared = WebSocketServerFactory(reactor=task.Clock()).prepareMessage(_PROBE_PAYLOAD, isBinary=False)
        if getattr(prepared, "payloadHybi", None) != _PROBE_FRAME:
            missing.append("autobahn PreparedMessage.payloadHybi (not the expected frame bytes)")
    except Exception as exc:  # noqa: BLE001 - any change in the factory API disables the path
        missing.append(f"autobahn prepareMessage failed: {exc!r}")
    left, right = socket.socketpair()
    try:
        connection = tcp.Connection(left, None, reactor=task.Clock())
        missing.extend(f"twisted tcp.Connection.{name}" for name in _TRANSPORT_FIELDS if not hasattr(connection, name))
    except Exception as exc:  # noqa: BLE001
        missing.append(f"twisted tcp.Connection failed: {exc!r}")
    finally:
        left.close()
        right.close()
    return missing


def fast_path_enable() -> bool:
    """Probe once per process and remember the verdict; logs the outcome."""
    return _FastPath.decide(fast_path_probe())


def fast_path_enabled() -> bool:
    return _FastPath.enabled


def _limit_send_buffer(protocol, size: int) -> None:
    """Cap the kernel's send buffer of this socket: with tens of thousands of
    connections, autotuned buffers of a few MB each for clients that stopped reading
    would be the memory nobody accounts for; past it, WS_MAX_BUFFER_BYTES applies."""
    sock = getattr(protocol.transport, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def daphne_protocol(send):
    """daphne's WebSocket protocol object behind an ASGI `send`, or None (the probe
    failed, or the server is not daphne). Caps the socket's send buffer when
    WS_SOCKET_SNDBUF is set."""
    if not (_FastPath.enabled and isinstance(send, functools.partial) and send.args):
        return None
    protocol = send.args[0]
    if not (hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "factory")):
        return None
    if settings.WS_SOCKET_SNDBUF:
        _limit_send_buffer(protocol, settings.WS_SOCKET_SNDBUF)
    return protocol


def expose_daphne_protocol(inner):
    """ASGI middleware form of `daphne_protocol`: puts the protocol into the scope's
    extensions for `protocol_from_scope` (the WebSocket door calls `daphne_protocol`
    itself, see signals.routing)."""

    async def app(scope, receive, send):
        if scope.get("type") == "websocket":
            protocol = daphne_protocol(send)
            if protocol is not None:
                extensions = scope.get("extensions")
                if extensions is None:
                    extensions = scope["extensions"] = {}
                extensions[SCOPE_KEY] = protocol
        return await inner(scope, receive, send)

    return app


def protocol_from_scope(scope: dict[str, Any]):
    return (scope.get("extensions") or {}).get(SCOPE_KEY)


def protocol_is_open(protocol) -> bool:
    """True while the socket is open and frames can be written as prepared bytes
    (per-message compression, if ever negotiated, needs per-connection framing)."""
    return (
        protocol is not None
        and protocol.state == protocol.STATE_OPEN
        and protocol._perMessageCompress is None
        and protocol.transport is not None
    )


def _write_now(transport, data: bytes, limit: int) -> None:
    """Write `data` to a Twisted TCP transport, trying the socket first.

    Twisted's `transport.write` always buffers and registers a writer with the
    reactor, then sends on the next loop turn and unregisters: on Twisted's asyncio
    reactor that is two epoll_ctl calls plus bookkeeping per client per frame,
    about half of the fan-out time at 2,000 clients (py-spy, bench/fanout.py).
    asyncio's own transports first try `send()` directly; this does the same when
    nothing is queued on the transport (so byte order is preserved), and hands any
    remainder or EAGAIN to `transport.write`, which keeps its usual semantics
    (buffering, back-pressure). A hard socket error is raised to the hub, which
    closes the client so it resumes from its own last id. So is a client that stopped
    reading (more than `limit` bytes already queued): it is cut off instead of costing
    the process unbounded memory, and resumes from its own last id when it reads again.
    """
    if transport.dataBuffer or transport._tempDataBuffer:
        if buffered_bytes(transport) + len(data) > limit:
            raise SlowClientError(f"more than {limit} bytes unread")
    if (
        transport.TLS
        or transport.dataBuffer
        or transport._tempDataBuffer
        or not transport.connected
        or transport.disconnecting
    ):
        if not transport.connected or transport.disconnecting:
            raise ConnectionError("the client's socket is closing")
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


class PreparedFrames:
    """Frames prepared once per (frame, factory) for one fan-out round."""

    def __init__(self, frame: str, *, limit: int):
        self._payload = frame.encode("utf-8")
        self._prepared: dict[int, Any] = {}
        self._limit = limit

    def send(self, protocol) -> None:
        factory = protocol.factory
        prepared = self._prepared.get(id(factory))
        if prepared is None:
            prepared = self._prepared[id(factory)] = factory.prepareMessage(self._payload, isBinary=False)
        # sendPreparedMessage would go through transport.write; same bytes, direct.
        _write_now(protocol.transport, prepared.payloadHybi, self._limit)
