"""The one door from a committed write to the channel layer (the "doorbell").

Why a doorbell and not the delivery itself: channels-redis may drop messages (a
channel over capacity, Redis restarting), so consumers treat every event only as a
hint of "ids up to N exist" and read anything they missed from the database.

Publishing happens on one long-lived event loop thread per process: the channel
layer keeps its Redis connections per event loop, so reusing one loop avoids a new
connection (and a leaked one) per signal. `on_commit` callers hand the doorbell to
that loop and return without waiting for Redis (waiting was ~0.5 ms of every POST):
a doorbell that fails or times out is logged and counted, and clients catch up from
the database (the hub's watchdog), as for any lost doorbell.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from .dispatch import amendment_published, announce, outcome_decided, signal_published

logger = logging.getLogger(__name__)

SIGNALS_GROUP = "signals"
_PUBLISH_TIMEOUT_SECONDS = 2.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="signal-publisher", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def _publish(message: dict[str, Any]) -> bool:
    """Hand `message` to the signals group in the background. Returns False when
    there is no channel layer; a send that fails later is logged and counted (the
    signal is already committed and clients recover it from the DB)."""
    layer = get_channel_layer()
    if layer is None:
        return False
    send = asyncio.wait_for(layer.group_send(SIGNALS_GROUP, message), _PUBLISH_TIMEOUT_SECONDS)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        # Called from async code (a consumer, an async test): this loop's connections.
        running.create_task(send).add_done_callback(_log_failure)
        return True
    asyncio.run_coroutine_threadsafe(send, _publisher_loop()).add_done_callback(_log_failure)
    return True


def publisher_warm_up() -> None:
    """Start the publisher thread and its Redis connection before the first signal
    (a web process's warm-up), with a message to a group nobody joins."""
    layer = get_channel_layer()
    if layer is not None:
        future = asyncio.run_coroutine_threadsafe(layer.group_send("warm-up", {"type": "warm.up"}), _publisher_loop())
        future.result(timeout=_PUBLISH_TIMEOUT_SECONDS)


def _log_failure(done) -> None:
    """Done-callback of a background publish (an asyncio Task or a concurrent Future)."""
    if done.cancelled() or done.exception() is None:
        return
    logger.warning("doorbell publish failed (clients will catch up from the DB): %r", done.exception())
    from .metrics import BROADCAST_FAILURES

    BROADCAST_FAILURES.inc()


def signal_event(signal) -> dict[str, Any]:
    """The channel-layer message for a new signal: its id, filter keys, and the
    client frame encoded once here so web processes never re-encode per client."""
    from .delivery import new_signal_frame

    frame = new_signal_frame(signal)
    return {
        "type": "signal.new",
        "id": signal.id,
        "symbol": signal.symbol,
        "market": signal.market,
        "frame": frame,
    }


def signal_broadcast(signal) -> bool:
    """Publish a committed signal's doorbell. Returns True when it reached Redis."""
    from .metrics import BROADCASTS

    BROADCASTS.labels(kind="signal").inc()
    return _publish(signal_event(signal))


def signal_broadcast_on_commit(signal) -> None:
    """Schedule the doorbell for after COMMIT: a client must never hear of a signal
    it cannot read yet, nor of one that was rolled back."""
    transaction.on_commit(lambda: signal_broadcast(signal))
    transaction.on_commit(lambda: announce(signal_published, signal=signal))


def outcome_broadcast_on_commit(outcome, *, decided: bool = True) -> None:
    """After COMMIT, push the outcome frame to browsers; when `decided` (a status or
    a leg changed) also announce it to other apps (webhooks, chat channels). A stop
    that only moved (a trailing stop) is news for the chart, not for integrations."""
    from .selectors import outcome_payload

    def _send() -> None:
        frame = {"type": "outcome", "signal_id": outcome.signal_id, "outcome": outcome_payload(outcome)}
        _publish_frame("signal.outcome", frame, signal=outcome.signal, id=outcome.signal_id)

    transaction.on_commit(_send)
    if decided:
        transaction.on_commit(lambda: announce(outcome_decided, outcome=outcome))


def _publish_frame(kind: str, frame: dict[str, Any], *, signal, **keys: Any) -> bool:
    """Publish a client frame (encoded once, here) with the signal's filter keys."""
    encoded = json.dumps(frame, separators=(",", ":"))
    return _publish({"type": kind, **keys, "symbol": signal.symbol, "market": signal.market, "frame": encoded})


def event_broadcast_on_commit(event) -> None:
    """After COMMIT, ring the doorbell for an amendment (`signal_event` frame, encoded
    once) and announce it to other apps."""
    from .selectors import event_payload

    def _send() -> None:
        frame = {"type": "signal_event", "signal_id": event.signal_id, "event": event_payload(event)}
        _publish_frame("signal.event", frame, signal=event.signal, id=event.id, signal_id=event.signal_id)

    transaction.on_commit(_send)
    transaction.on_commit(lambda: announce(amendment_published, event=event))


def health_broadcast(health: dict[str, Any]) -> bool:
    """Push the latest health summary to every dashboard."""
    frame = json.dumps({"type": "health", **health}, separators=(",", ":"), default=str)
    return _publish({"type": "health.update", "frame": frame})
