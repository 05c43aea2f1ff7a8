"""Broadcast fast path under daphne: frame a doorbell once, write it to many sockets.

Going through ASGI, every client's copy of a frame travels consumer.send ->
session wrapper -> daphne.handle_reply -> autobahn.sendMessage, which re-frames
the same payload each time; bench/fanout.py measured that chain as most of the
per-client cost at 2,000 clients. autobahn has a public API for exactly this case,
`factory.prepareMessage()` + `protocol.sendPreparedMessage()` ("frame once, send
to many"). ASGI hides the autobahn protocol object, so the outermost ASGI layer
(`expose_daphne_protocol`) records it in the scope when the server is daphne.
Anything else (another ASGI server, channels' test communicator) simply has no
entry and the hub falls back to plain ASGI sends.
"""
from __future__ import annotations

import functools
from typing import Any

SCOPE_KEY = "signals.websocket_protocol"


def expose_daphne_protocol(inner):
    """ASGI middleware: put daphne's WebSocket protocol object into the scope."""

    async def app(scope, receive, send):
        if scope.get("type") == "websocket" and isinstance(send, functools.partial) and send.args:
            protocol = send.args[0]
            if hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "factory"):
                # Outermost layer: the scope is daphne's own, so it is extended in place
                # (a copy would stay alive, per connection, in this coroutine's frame).
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
        and getattr(protocol, "_perMessageCompress", None) is None
        and protocol.transport is not None
    )


def _write_now(transport, data: bytes) -> None:
    """Write `data` to a Twisted TCP transport, trying the socket first.

    Twisted's `transport.write` always buffers and registers a writer with the
    reactor, then sends on the next loop turn and unregisters: on Twisted's asyncio
    reactor that is two epoll_ctl calls plus bookkeeping per client per frame,
    about half of the fan-out time at 2,000 clients (py-spy, bench/fanout.py).
    asyncio's own transports first try `send()` directly; this does the same when
    nothing is queued on the transport (so byte order is preserved), and hands any
    remainder, EAGAIN or error to `transport.write`, which keeps its usual
    semantics (buffering, back-pressure, connection loss handling).
    """
    sock = getattr(transport, "socket", None)
    if (
        sock is None
        or getattr(transport, "TLS", False)
        or transport.dataBuffer
        or transport._tempDataBuffer
        or not transport.connected
        or transport.disconnecting
    ):
        transport.write(data)
        return
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        transport.write(data)  # let Twisted notice the broken connection
        return
    if sent < len(data):
        transport.write(data[sent:])


class PreparedFrames:
    """Frames prepared once per (frame, factory) for one fan-out round."""

    def __init__(self, frame: str):
        self._payload = frame.encode("utf-8")
        self._prepared: dict[int, Any] = {}

    def send(self, protocol) -> None:
        factory = protocol.factory
        prepared = self._prepared.get(id(factory))
        if prepared is None:
            prepared = self._prepared[id(factory)] = factory.prepareMessage(self._payload, isBinary=False)
        # sendPreparedMessage would go through transport.write; same bytes, direct.
        _write_now(protocol.transport, prepared.payloadHybi)
