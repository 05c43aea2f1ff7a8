"""The WebSocket door: /ws/signals/ as ONE coroutine per connection.

Why one: every ASGI layer around a consumer (router, origin check, auth and session
middleware, admission, log context, `as_asgi`) stays suspended for the whole life of
the connection, each with its own frame and whatever it holds (channels' middleware
each keep a copy of the scope, the session middleware its session). With thousands of
idle connections that was several KiB each, and memory per idle connection is a
benchmark target (BENCHMARKS.md). So those steps are plain functions, called in the
order the layers ran, and the consumer's receive loop runs here.

Order, as before: daphne's protocol (fan-out fast path) and receive queue, the
connection's log id, admission (4503 when overloaded), the Origin rule and the user
(signals.auth), the path (one endpoint: any other gets 403), then the consumer.
"""
from __future__ import annotations

from channels.exceptions import StopConsumer

from signals_project.logs import connection_id_bind

from .admission import admission_refuse, local_admission
from .auth import websocket_origin_allowed, websocket_user
from .consumers import SignalConsumer
from .prepared_frames import daphne_protocol, protocol_from_scope
from .receive_queue import receive_queue_adopt

SIGNALS_WS_PATH = "/ws/signals/"


async def websocket_door(scope, receive, send) -> None:
    """Admit, authenticate and route one WebSocket connection, then run its
    SignalConsumer until the client goes away."""
    protocol = daphne_protocol(send)
    receive = receive_queue_adopt(protocol, receive)
    connection_id_bind()  # in this connection's own task: it ends with the task
    admission = local_admission()
    if not admission.try_admit():
        await admission_refuse(admission, receive, send)
        return
    consumer = None
    try:
        if not websocket_origin_allowed(scope):
            await _refuse_handshake(receive, send)
            return
        user = await websocket_user(scope)
        if scope.get("path") != SIGNALS_WS_PATH:
            await _refuse_handshake(receive, send)
            return
        consumer = SignalConsumer(scope=scope, user=user, send=send, admission=admission,
                                  protocol=protocol or protocol_from_scope(scope))
        # The consumer keeps the scope only until its handshake is decided; this
        # frame lives as long as the connection and must not keep it either.
        del scope
        try:
            while True:
                await consumer.dispatch(await receive())
        except StopConsumer:
            pass
    finally:
        if consumer is None:
            admission.release(live=False)
        else:
            consumer.leave_pending(live=False)


async def _refuse_handshake(receive, send) -> None:
    await receive()  # the websocket.connect message
    await send({"type": "websocket.close"})  # before accept: the handshake is refused with 403
