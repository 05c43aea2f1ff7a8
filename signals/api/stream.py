"""Server-Sent Events fallback: GET /api/signals/stream/?after_id=N

For networks where WebSockets are blocked. Same rule as the WebSocket: subscribe,
replay id > N from the database, then live; the SSE event id is the signal id, so a
browser's EventSource reconnects with `Last-Event-ID` and resumes exactly there.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import JsonResponse, StreamingHttpResponse

from .. import metrics
from ..broadcast import SIGNALS_GROUP
from ..consumers import QueryError, parse_stream_query
from ..delivery import SignalCursor, current_max_id

HEARTBEAT_SECONDS = 15.0
WATCHDOG_SECONDS = 5.0


@sync_to_async
def _token_user(header: str):
    from rest_framework.authtoken.models import Token

    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    token = Token.objects.select_related("user").filter(key=parts[1]).first()
    return token.user if token and token.user.is_active else None


async def _authenticate(request):
    header = request.headers.get("Authorization")
    if header:
        return await _token_user(header)
    user = await request.auser()
    return user if user.is_authenticated else None


def _sse(frame: str) -> str:
    message = json.loads(frame)
    kind = message.get("type", "message")
    lines = []
    if kind == "new_signal":
        lines.append(f"id: {message['signal']['id']}")
    lines.append(f"event: {kind}")
    lines.append(f"data: {frame}")
    return "\n".join(lines) + "\n\n"


async def signal_stream(request):
    user = await _authenticate(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    query = parse_qs(request.META.get("QUERY_STRING", ""))
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id:
        # EventSource resends the last id it saw; it wins over the URL's after_id.
        query["after_id"] = [last_event_id.strip()]
    try:
        after_id, filters = parse_stream_query(query)
    except QueryError as exc:
        return JsonResponse({"after_id" if "after_id" in str(exc) else "detail": [str(exc)]}, status=400)

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(SIGNALS_GROUP, channel)
    if after_id is None:
        after_id = await current_max_id()
    cursor = SignalCursor(after_id=after_id, filters=filters, on_fill=metrics.WS_GAP_FILLS.inc)
    frames: asyncio.Queue[str] = asyncio.Queue()

    async def _put(frame: str) -> None:
        await frames.put(frame)

    async def _pump() -> None:
        await cursor.replay(_put)
        last_seen_max = cursor.mark
        while True:
            try:
                event = await asyncio.wait_for(layer.receive(channel), timeout=WATCHDOG_SECONDS)
            except asyncio.TimeoutError:
                # No doorbell for a while: make sure none was lost.
                latest = await current_max_id()
                await cursor.catch_up(min(latest, last_seen_max), _put)
                last_seen_max = latest
                continue
            kind = event.get("type")
            if kind == "signal.new":
                await cursor.on_doorbell(event, _put)
            elif kind in ("signal.outcome",) and cursor.matches(event):
                await _put(event["frame"])
            elif kind == "health.update":
                await _put(event["frame"])

    async def _events():
        metrics.SSE_CONNECTIONS.inc()
        pump = asyncio.get_running_loop().create_task(_pump())
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    frame = await asyncio.wait_for(frames.get(), timeout=HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    if pump.done():
                        break
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(frame)
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            with contextlib.suppress(Exception):
                await layer.group_discard(SIGNALS_GROUP, channel)
            metrics.SSE_CONNECTIONS.dec()

    response = StreamingHttpResponse(_events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
