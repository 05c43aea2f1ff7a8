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

from django.http import JsonResponse, StreamingHttpResponse

from .. import metrics
from ..auth import user_for_authorization
from ..feed_query import QueryError, stream_query_parse
from ..delivery import SignalCursor, current_max_id
from ..hub import local_hub

HEARTBEAT_SECONDS = 15.0


async def _authenticate(request):
    """The session user, or the owner of an `Authorization: Token` header (a header
    that is present but wrong never falls back to the cookie)."""
    header = request.headers.get("Authorization")
    if header:
        return await user_for_authorization(header)
    user = await request.auser()
    return user if user.is_authenticated else None


class _StreamClient:
    """An SSE response as a client of the process hub (signals.hub): the same one
    subscription and watchdog as WebSocket clients; its events are handled in order
    by the response's pump through the shared SignalCursor rule."""

    def __init__(self) -> None:
        self.cursor: SignalCursor | None = None  # set once subscribed (see signal_stream)
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.frames: asyncio.Queue[str] = asyncio.Queue()

    def offer(self, event: dict) -> None:
        self.events.put_nowait(event)
        return None

    def fast_protocol(self) -> None:
        return None

    def lagging_behind(self, max_id: int) -> bool:
        return self.cursor is not None and self.cursor.mark < max_id

    def request_catch_up(self, up_to_id: int) -> None:
        self.events.put_nowait({"type": "catch_up", "id": up_to_id})

    async def send_text(self, frame: str) -> None:
        await self.frames.put(frame)


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
        parsed = stream_query_parse(query)
    except QueryError as exc:
        return JsonResponse({"after_id" if "after_id" in str(exc) else "detail": [str(exc)]}, status=400)

    after_id, filters = parsed.after_id, parsed.filters
    hub = local_hub()
    client = _StreamClient()
    # Subscribe before reading, as the WebSocket consumer does: doorbells queue in
    # client.events from now on, and the pump handles them after the replay.
    await hub.register(client)
    latest = await current_max_id()
    if after_id is not None and after_id > latest:
        # Ids this database never issued (another deployment, a restored backup):
        # streaming would hide every signal up to that id. Answered before the stream
        # starts, as the WebSocket's `resync` frame and 4409 are; EventSource does not
        # retry a non-200 answer, so it does not loop on it either.
        hub.unregister(client)
        metrics.WS_REJECTED.labels(reason="resync").inc()
        return JsonResponse({"type": "resync", "last_id": latest,
                             "detail": f"after_id is ahead of the newest signal {latest}: start again from it"},
                            status=409)
    if after_id is None:
        after_id = latest
    client.cursor = SignalCursor(after_id=after_id, filters=filters, on_fill=metrics.WS_GAP_FILLS.inc,
                                 after_event_id=parsed.after_event_id)

    async def _pump() -> None:
        await client.cursor.replay(client.send_text)
        while True:
            await client.cursor.handle(await client.events.get(), client.send_text)

    async def _events():
        metrics.SSE_CONNECTIONS.inc()
        pump = asyncio.get_running_loop().create_task(_pump())
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    frame = await asyncio.wait_for(client.frames.get(), timeout=HEARTBEAT_SECONDS)
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
            hub.unregister(client)
            metrics.SSE_CONNECTIONS.dec()

    response = StreamingHttpResponse(_events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
