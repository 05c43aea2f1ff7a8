"""A small ASGI receive queue for daphne's WebSocket connections.

daphne gives every connection an `asyncio.Queue` and passes its `get` as the ASGI
`receive`. That queue is empty nearly all the time, yet with its three deques and
its `Event` (one more deque) it costs ~3.3 KB per connection: about a sixth of what
an idle WebSocket costs the web process, and memory per idle connection is a
benchmark target (BENCHMARKS.md). `ReceiveQueue` behaves the same for daphne and
the application (first in, first out, unbounded, `put_nowait` never blocks, a
cancelled `get` loses nothing) in two slots, holding a deque only while messages
wait and a list only while a `get` waits.

Swapping it in leans on daphne details that are not its public API, so it is fenced
like signals.prepared_frames: `receive_queue_probe()` checks them once at startup
(asgi.py), and each connection is checked again before the swap (`receive` must be
the bound `get` of the very `asyncio.Queue` daphne's protocol puts into). If
anything differs, the connection keeps daphne's own queue.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections import deque
from typing import Any

from .prepared_frames import ProbedPath

logger = logging.getLogger(__name__)


class ReceiveQueue:
    """What daphne's WebSocket protocol needs of its application queue (`put_nowait`)
    and what the application needs of `receive` (`get`), in two slots."""

    __slots__ = ("_messages", "_getters")

    def __init__(self) -> None:
        # Invariant: messages wait only while no getter waits, and the reverse.
        self._messages: deque | None = None
        self._getters: list[asyncio.Future] | None = None

    def put_nowait(self, message: Any) -> None:
        if not self._hand_to_getter(message):
            if self._messages is None:
                self._messages = deque()
            self._messages.append(message)

    async def get(self) -> Any:
        if self._messages:
            message = self._messages.popleft()
            if not self._messages:
                self._messages = None
            return message
        getter = asyncio.get_running_loop().create_future()
        if self._getters is None:
            self._getters = []
        self._getters.append(getter)
        try:
            return await getter
        except BaseException:
            if getter.done() and not getter.cancelled():
                # Handed a message, then cancelled before returning it: it goes
                # back to the front, as asyncio.Queue would leave it in the queue.
                self._put_back(getter.result())
            else:
                self._forget(getter)
            raise

    def _hand_to_getter(self, message: Any) -> bool:
        while self._getters:
            getter = self._getters.pop(0)
            if not self._getters:
                self._getters = None
            if not getter.done():
                getter.set_result(message)
                return True
        return False

    def _put_back(self, message: Any) -> None:
        if not self._hand_to_getter(message):
            if self._messages is None:
                self._messages = deque()
            self._messages.appendleft(message)

    def _forget(self, getter: asyncio.Future) -> None:
        if self._getters and getter in self._getters:
            self._getters.remove(getter)
            if not self._getters:
                self._getters = None


_Swap = ProbedPath(on="WebSocket receive queue swap on: daphne's asyncio.Queue replaced per connection",
                   off="WebSocket receive queue swap OFF, keeping daphne's asyncio.Queue", log=logger)


def receive_queue_probe() -> list[str]:
    """Check the daphne details the swap relies on. Returns what is missing or
    changed (empty when the swap is safe)."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError as exc:
        return [f"import failed: {exc}"]
    missing: list[str] = []
    create = inspect.getsource(Server.create_application)
    # The queue daphne hands to the protocol is the one whose `get` is `receive`.
    for needle in ("input_queue = asyncio.Queue()", "receive=input_queue.get", "return input_queue"):
        if needle not in create:
            missing.append(f"daphne Server.create_application no longer has {needle!r}")
    if "partial(self.handle_reply, protocol)" not in create:
        missing.append("daphne Server.create_application no longer sends partial(handle_reply, protocol)")
    # The WebSocket protocol must only ever put into its queue.
    uses = set(re.findall(r"application_queue\.(\w+)", inspect.getsource(WebSocketProtocol)))
    if uses != {"put_nowait"}:
        missing.append(f"daphne WebSocketProtocol uses application_queue.{sorted(uses)} (expected put_nowait only)")
    if "self.application_queue = application_queue" not in inspect.getsource(WebSocketProtocol):
        missing.append("daphne WebSocketProtocol.application_queue is no longer set from create_application")
    return missing


def receive_queue_enable() -> bool:
    """Probe once per process and remember the verdict; logs the outcome."""
    return _Swap.decide(receive_queue_probe())


def receive_queue_adopt(protocol, receive):
    """The `receive` to use for this connection: a ReceiveQueue's `get` in place of
    daphne's queue when everything checks out, else `receive` unchanged. `protocol` is
    daphne's, as signals.prepared_frames.daphne_protocol finds it (None when that
    probe failed or the server is not daphne: no swap either).

    Called at the start of the connection's coroutine: daphne has already put the
    `websocket.connect` message into its queue; whatever waits there moves over in
    order, and daphne's protocol puts into the new queue from then on."""
    if not _Swap.enabled or protocol is None:
        return receive
    queue = getattr(receive, "__self__", None)
    if (
        type(queue) is not asyncio.Queue
        or getattr(receive, "__func__", None) is not asyncio.Queue.get
        or getattr(protocol, "application_queue", None) is not queue
    ):
        return receive
    light = ReceiveQueue()
    while not queue.empty():
        light.put_nowait(queue.get_nowait())
    protocol.application_queue = light
    return light.get
