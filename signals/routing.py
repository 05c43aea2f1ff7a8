"""WebSocket routing. There is exactly one endpoint, so it is matched directly:
channels' URLRouter keeps a copied scope alive in its frame for every open
connection, and memory per idle connection is a benchmark target (BENCHMARKS.md)."""
from .consumers import SignalConsumer

SIGNALS_WS_PATH = "/ws/signals/"
signal_consumer_app = SignalConsumer.as_asgi()


async def websocket_router(scope, receive, send):
    """Route /ws/signals/ to SignalConsumer; refuse any other path's handshake (403)."""
    if scope.get("path") != SIGNALS_WS_PATH:
        await receive()  # the websocket.connect message
        await send({"type": "websocket.close"})
        return
    return await signal_consumer_app(scope, receive, send)
