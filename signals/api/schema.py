"""OpenAPI for the doors drf-spectacular cannot see by itself.

Why a post-processing hook: the Server-Sent Events stream is a plain async Django
view (a DRF view would buffer the response and run its sync machinery on a thread),
so drf-spectacular's endpoint enumerator skips it; clients still need it in
/api/schema/. The operation below mirrors signals/api/stream.py.
"""
from __future__ import annotations

STREAM_PATH = "/api/signals/stream/"

_ID_DESCRIPTION = "a non-negative integer"


def _query(name: str, description: str) -> dict:
    return {"in": "query", "name": name, "required": False, "schema": {"type": "string"},
            "description": description}


def _id_query(name: str, description: str) -> dict:
    return {"in": "query", "name": name, "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 999999999999999999},
            "description": f"{description} ({_ID_DESCRIPTION})"}


_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}}
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
        _query("symbol", "only this symbol, e.g. BTCUSDT"),
        _query("market", "only this market"),
        {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"},
         "description": "sent by EventSource on reconnect; replaces after_id"},
    ],
    "responses": {
        "200": {"description": "an endless text/event-stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        "400": {"description": "a malformed query parameter, named in the body",
                "content": {"application/json": {"schema": _FIELD_ERRORS}}},
        "401": {"description": "no valid session or token",
                "content": {"application/json": {"schema": _DETAIL}}},
    },
    "security": [{"tokenAuth": []}, {"cookieAuth": []}],
}


def add_signal_stream(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: adds GET /api/signals/stream/."""
    result.setdefault("paths", {}).setdefault(STREAM_PATH, {})["get"] = STREAM_OPERATION
    return result
