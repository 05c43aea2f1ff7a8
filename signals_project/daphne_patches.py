"""Small fix for daphne: it drops the `reason` of an ASGI `websocket.close` message.

Our contract promises a close code *with a reason* for bad client input, so the
reason is passed through to autobahn's close frame. Idempotent; applied by asgi.py.
"""
from __future__ import annotations


def apply() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under daphne
        return
    if getattr(WebSocketProtocol, "_signals_close_reason_patch", False):
        return
    original = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            reason = message.get("reason") or None
            # Close reasons are limited to 123 bytes by RFC 6455.
            if reason is not None:
                reason = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason)
            return
        return original(self, message)

    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol._signals_close_reason_patch = True
