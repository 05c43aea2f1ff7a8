"""WebSocket consumer: /ws/signals/?after_id=N&symbol=&market=

Thin: parses the query, checks the user the door (signals.routing) resolved, then
hands ordering and gap handling to signals.delivery.SignalCursor.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.db import DatabaseError, InterfaceError

from . import metrics
from .admission import Admission, local_admission
from .delivery import SignalCursor, current_max_id
from .receipts import ReceiptWriter
from .prepared_frames import SlowClientError, protocol_is_open
from .hub import local_hub
from .feed_query import QueryError, stream_query_parse

logger = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE_BYTES = 4096
MAX_CLIENT_ERRORS = 20
_FILL_RETRY_SECONDS = 1.0

# Application close codes live in 4000-4999 (autobahn, under daphne, refuses to send
# the RFC's 1003/1008/1009 from a server); each mirrors the HTTP/RFC meaning.
CLOSE_BAD_REQUEST = 4400     # bad query string
CLOSE_UNSUPPORTED = 4415     # binary frame (RFC 1003)
CLOSE_TOO_BIG = 4413         # message over the size limit (RFC 1009)
CLOSE_POLICY = 4429          # too many malformed messages (RFC 1008)
CLOSE_RESYNC = 4409          # after_id ahead of the server: a resync frame says where it is
CLOSE_SERVER_ERROR = 4500    # our side failed mid-stream; the client should resume


class SignalConsumer(AsyncWebsocketConsumer):
    """One browser or API client, driven by the WebSocket door (signals.routing),
    which has admitted and authenticated it and runs its receive loop. Doorbells come
    from the process hub (signals.hub), not from a per-connection channel, so the
    consumer has no channel of its own.

    Slots, not an instance dict: thousands of these live per web process and memory
    per idle connection is a benchmark target (BENCHMARKS.md)."""

    __slots__ = ("scope", "base_send", "user", "cursor", "_protocol", "_pending_admission", "_hub", "_errors",
                 "_backlog", "_busy", "_drainer", "_counted", "_conn_state", "_receipt_writer",
                 "_closing_after_failure")
    groups = ()  # no channel-layer groups (and no per-instance list for them)
    channel_layer = None

    def __init__(self, *, scope: dict, user, send, admission: Admission | None = None, protocol=None) -> None:
        self.scope: dict | None = scope  # read by the handshake only, then dropped
        self.base_send = send
        self.user = user
        self.cursor: SignalCursor | None = None
        self._protocol = protocol  # daphne's, for prepared-frame writes (None: ASGI sends)
        self._pending_admission = admission  # counted as pending there until live or gone
        self._hub = None
        self._errors = 0
        self._backlog: deque[dict] | tuple = ()  # a deque once something queues
        self._busy = True  # until the replay is done, doorbells queue in the backlog
        self._drainer: asyncio.Task | None = None
        self._counted = False
        self._conn_state: str | None = None
        self._receipt_writer: ReceiptWriter | None = None
        self._closing_after_failure = False

    async def websocket_connect(self, message) -> None:
        try:
            await super().websocket_connect(message)
        finally:
            # Nothing reads the scope after the handshake: dropping it frees it (and
            # what only it holds) for the life of the connection.
            self.scope = None

    def leave_pending(self, *, live: bool) -> None:
        """This connection no longer counts as pending for admission (it is live, or
        gone). Idempotent: the consumer and the door may both call it."""
        admission, self._pending_admission = self._pending_admission, None
        if admission is not None:
            admission.release(live=live)

    async def connect(self) -> None:
        user = self.user
        if user is None or not user.is_authenticated:
            metrics.WS_REJECTED.labels(reason="unauthenticated").inc()
            await self.close()  # before accept: the handshake is refused with 403
            return
        try:
            query = stream_query_parse(parse_qs(self.scope.get("query_string", b"").decode("latin-1")))
        except QueryError as exc:
            metrics.WS_REJECTED.labels(reason="bad_query").inc()
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST, reason=str(exc))
            return
        after_id, filters = query.after_id, query.filters
        self._hub = local_hub()
        # Subscribe before reading: nothing committed from now on can be missed.
        await self._hub.register(self)
        # The newest id committed before the handshake completes: "live only" starts
        # there (anything committed once the client sees the socket open is live),
        # and a replay reads up to it (later ones arrive as doorbells, in order).
        if after_id is not None:
            # Resuming clients see the socket open before any database read: the
            # handshake stays cheap in a reconnect storm (the replay reads up to the
            # maximum below; anything later arrives as a doorbell).
            await self.accept()
        try:
            latest = await current_max_id()
        except Exception as exc:  # noqa: BLE001 - database unreachable: come back later
            logger.info("closing a new client, the database is unreachable: %r", exc)
            if after_id is None:
                await self.accept()
            await self.close(code=CLOSE_SERVER_ERROR, reason="temporary server error, please reconnect")
            return
        if after_id is not None and after_id > latest:
            # The client holds ids this database never issued (another deployment, a
            # restored backup): silently accepting would hide every signal up to its id.
            metrics.WS_REJECTED.labels(reason="resync").inc()
            await self.send(text_data=json.dumps({"type": "resync", "last_id": latest}))
            await self.close(code=CLOSE_RESYNC, reason=f"after_id is ahead of the newest signal {latest}")
            return
        self.cursor = SignalCursor(after_id=latest if after_id is None else after_id, filters=filters,
                                   on_fill=metrics.WS_GAP_FILLS.inc, after_event_id=query.after_event_id)
        if after_id is None:
            await self.accept()
        metrics.WS_CONNECTIONS.inc()
        self._counted = True
        self._set_state("replaying")
        # `_busy` (set above) is the only serialization needed: while it is set,
        # doorbells and catch-ups queue in the backlog and no drainer is started.
        try:
            # Bounded concurrency: in a reconnect storm admitted clients finish their
            # replays quickly one group after another instead of all crawling.
            async with local_admission().replay_slots:
                replayed = await self.cursor.replay(self.send_text, up_to_id=latest)
            metrics.WS_FRAMES_REPLAYED.inc(replayed)
        except Exception as exc:  # noqa: BLE001 - DB down mid-replay: let the client resume later
            logger.info("closing a client whose replay failed: %r", exc)
            await self.close(code=CLOSE_SERVER_ERROR, reason="temporary server error, please reconnect")
            return
        await self._drain_backlog()
        self._set_state("live")
        self.leave_pending(live=True)

    def _set_state(self, state: str | None) -> None:
        """Move this connection between the per-state gauges (None: it is gone)."""
        old = self._conn_state
        if old == state:
            return
        if old is not None:
            metrics.WS_CONNECTIONS_BY_STATE.labels(state=old).dec()
        if state is not None:
            metrics.WS_CONNECTIONS_BY_STATE.labels(state=state).inc()
        self._conn_state = state

    async def dispatch(self, message) -> None:
        """Like channels' dispatch, minus its per-message `aclose_old_connections()`.

        channels 4.2+ hops to the sync thread before EVERY handler to close stale DB
        connections. Client frames do not touch the database, and the paths that do
        go through database_sync_to_async, which closes old connections itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def _receipts(self) -> ReceiptWriter:
        # Created on the first ack only: idle connections stay small.
        writer = self._receipt_writer
        if writer is None:
            writer = self._receipt_writer = ReceiptWriter(user=self.user)
        return writer

    async def disconnect(self, code) -> None:
        if self._hub is not None:
            self._hub.unregister(self)
        if self._drainer_running():
            self._drainer.cancel()
        if self._counted:
            metrics.WS_CONNECTIONS.dec()
            self._counted = False
        self._set_state(None)

    async def send_text(self, frame: str) -> None:
        await self.send(text_data=frame)

    # --- the hub's side (signals.hub.HubClient) ------------------------------------------
    def offer(self, event: dict) -> str | None:
        """Fast path, called synchronously by the hub for each doorbell: return the
        frame to write now, or None (duplicate, filtered out, or queued for the
        ordered slow path because a replay/fill is in progress or ids jumped)."""
        if self.cursor is None or self._busy or self._backlog:
            self._enqueue(event)
            return None
        if event.get("type") != "signal.new":
            return self.cursor.passthrough(event)
        handled, frame = self.cursor.advance(event)
        if not handled:
            self._enqueue(event)  # doorbells were lost: fill from the DB, in order
        return frame

    def fast_protocol(self):
        """daphne's protocol for prepared-frame writes, or None to use ASGI send."""
        protocol = self._protocol
        return protocol if protocol_is_open(protocol) else None

    def lagging_behind(self, max_id: int) -> bool:
        return self.cursor is not None and self.cursor.mark < max_id

    def write_failed(self, event: dict, exc: Exception) -> None:
        """The hub could not write `event`'s frame: take the mark back so it never
        counts an unwritten frame, stop the fast path for this client and close it;
        the client reconnects with its own last id and gets the frame from the DB."""
        if self.cursor is not None and event.get("type") == "signal.new":
            self.cursor.rewind(int(event["id"]))
        self._busy = True
        self._backlog = ()
        if self._closing_after_failure:
            return
        self._closing_after_failure = True
        if isinstance(exc, SlowClientError):
            # A close frame would queue behind everything it did not read: cut it off.
            metrics.WS_REJECTED.labels(reason="not_reading").inc()
            self._protocol.dropConnection(abort=True)
            return
        asyncio.get_running_loop().create_task(self._close_after_failed_write())

    async def _close_after_failed_write(self) -> None:
        try:
            await self.close(code=CLOSE_SERVER_ERROR, reason="a frame could not be written, please resume")
        except Exception:  # noqa: BLE001 - the socket is already gone: drop it outright
            protocol = self._protocol
            if protocol is not None:
                protocol.dropConnection(abort=True)

    def request_catch_up(self, up_to_id: int) -> None:
        self._enqueue({"type": "catch_up", "id": up_to_id})

    def _enqueue(self, event: dict) -> None:
        if not isinstance(self._backlog, deque):
            self._backlog = deque()  # most clients never need one: keep idle ones small
        self._backlog.append(event)
        if self.cursor is not None and not self._busy and not self._drainer_running():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def _drainer_running(self) -> bool:
        return self._drainer is not None and not self._drainer.done()

    async def _drain(self) -> None:
        # At most one drainer runs (see _enqueue) and never during connect's replay.
        self._busy = True
        await self._drain_backlog()

    async def _drain_backlog(self) -> None:
        """Handle queued doorbells in order; clears `_busy` only once the backlog is
        empty, with no await in between, so the fast path can never overtake it.

        A database outage while filling a gap keeps the socket open (the client is
        told by the hub's status frame): the event stays first in the backlog and is
        retried; the cursor's mark makes the retry resume exactly where it stopped."""
        try:
            while self._backlog:
                await self.cursor.handle(self._backlog[0], self.send_text)
                self._backlog.popleft()
        except (DatabaseError, InterfaceError) as exc:
            logger.info("database unavailable while filling a client's gap, retrying: %r", exc)
            asyncio.get_running_loop().call_later(_FILL_RETRY_SECONDS, self._retry_drain)
            return  # still busy: nothing may overtake the queued events
        except Exception as exc:  # noqa: BLE001 - socket gone: drop the client, it resumes
            logger.info("closing a client whose backlog failed: %r", exc)
            self._backlog = ()
            await self.close(code=CLOSE_SERVER_ERROR, reason="temporary server error, please reconnect")
        self._busy = False

    def _retry_drain(self) -> None:
        if self._backlog and not self._drainer_running():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    # --- client messages -----------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None) -> None:
        if bytes_data is not None:
            await self.close(code=CLOSE_UNSUPPORTED, reason="binary frames are not supported")
            return
        if len(text_data.encode("utf-8")) > MAX_CLIENT_MESSAGE_BYTES:
            metrics.WS_REJECTED.labels(reason="too_big").inc()
            await self.close(code=CLOSE_TOO_BIG, reason=f"message larger than {MAX_CLIENT_MESSAGE_BYTES} bytes")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._client_error("malformed_json", "message is not valid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._client_error("bad_message", 'expected an object like {"type": "ping"}')
            return
        if message["type"] == "ping":
            await self.send(text_data='{"type":"pong"}')
            return
        if message["type"] == "ack":
            signal_id = message.get("id")
            if isinstance(signal_id, bool) or not isinstance(signal_id, int) or not 0 <= signal_id < 2**63:
                await self._client_error("bad_ack", 'expected {"type": "ack", "id": <signal id>}')
                return
            self._receipts().acknowledge(signal_id)
            return
        await self._client_error("unknown_type", f"unknown message type {message['type'][:40]!r}")

    async def _client_error(self, code: str, detail: str) -> None:
        self._errors += 1
        if self._errors > MAX_CLIENT_ERRORS:
            metrics.WS_REJECTED.labels(reason="too_many_errors").inc()
            await self.close(code=CLOSE_POLICY, reason="too many malformed messages")
            return
        await self.send(text_data=json.dumps({"type": "error", "code": code, "detail": detail}))
