"""OpenAPI for the doors drf-spectacular cannot see by itself.

Why a post-processing hook: the Server-Sent Events stream is a plain async Django
view (a DRF view would buffer the response and run its sync machinery on a thread),
so drf-spectacular's endpoint enumerator skips it; clients still need it in
/api/schema/. The operation below mirrors signals/api/stream.py.
"""
from __future__ import annotations

from ..models import Market

STREAM_PATH = "/api/signals/stream/"

_ID_DESCRIPTION = "a non-negative integer"


def _query(name: str, description: str, schema: dict) -> dict:
    return {"in": "query", "name": name, "required": False, "schema": schema, "description": description}


def _id_query(name: str, description: str) -> dict:
    return {"in": "query", "name": name, "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 999999999999999999},
            "description": f"{description} ({_ID_DESCRIPTION})"}


_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}}
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "the signal id (new_signal events only)"},
        "event": {"type": "string", "enum": ["new_signal", "outcome", "signal_event", "health", "status"]},
        "data": {"type": "string", "description": "the frame's JSON, as on the WebSocket"},
        "retry": {"type": "integer"},
    },
}
_FIELD_ERRORS = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}

STREAM_OPERATION = {
    "operationId": "signals_stream",
    "summary": "Live signals as Server-Sent Events (WebSocket fallback)",
    "description": (
        "Same rule as the WebSocket `/ws/signals/`: replays every signal with id > `after_id` "
        "in id order (then every amendment with id > `after_event_id`), then streams live. "
        "Each `new_signal` event carries `id: <signal id>`, so a browser's EventSource resumes "
        "with `Last-Event-ID`, which wins over `after_id`. Without `after_id` the stream is live "
        "only. Event names are the frame types (`new_signal`, `outcome`, `signal_event`, "
        "`health`); `data` is the frame's JSON. A comment line is sent every 15 s as keep-alive. "
        "The response never ends by itself."
    ),
    "tags": ["signals"],
    "parameters": [
        _id_query("after_id", "replay signals with a greater id, then live"),
        _id_query("after_event_id", "replay amendments with a greater id after the signals"),
        _query("symbol", "only this symbol, e.g. BTCUSDT (1-32 letters or digits, any case)",
               {"type": "string", "pattern": "^[A-Za-z0-9]{0,32}$"}),
        _query("market", "only this market", {"type": "string", "enum": ["", *Market.values]}),
        {"in": "header", "name": "Last-Event-ID", "required": False,
         "schema": {"type": "string", "pattern": "^[0-9]{0,18}$"},
         "description": "sent by EventSource on reconnect (the last signal id it saw); replaces after_id"},
    ],
    "responses": {
        "200": {"description": "an endless text/event-stream; each event as parsed by EventSource",
                "content": {"text/event-stream": {"schema": _SSE_EVENT}}},
        "400": {"description": "a malformed query parameter, named in the body",
                "content": {"application/json": {"schema": _FIELD_ERRORS}}},
        "401": {"description": "no valid session or token",
                "content": {"application/json": {"schema": _DETAIL}}},
        "409": {"description": "after_id (or Last-Event-ID) is ahead of the newest signal: start again from last_id",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["type", "last_id", "detail"],
                    "properties": {"type": {"type": "string", "enum": ["resync"]},
                                   "last_id": {"type": "integer"}, "detail": {"type": "string"}}}}}},
    },
    "security": [{"tokenAuth": []}, {"cookieAuth": []}],
}


def add_signal_stream(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: adds GET /api/signals/stream/."""
    result.setdefault("paths", {}).setdefault(STREAM_PATH, {})["get"] = STREAM_OPERATION
    return result
