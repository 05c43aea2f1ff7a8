"""OpenAPI for `POST /api/inbound/{token}/`, which drf-spectacular cannot see: it is
a plain Django view (the token in the path is its only credential, so there is no
DRF authentication, session or CSRF to run). The operation mirrors
integrations/api/inbound.py and integrations/inbound.py.
"""
from __future__ import annotations

INBOUND_PATH = "/api/inbound/{token}/"

_DETAIL = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
_SIGNAL = {"$ref": "#/components/schemas/Signal"}

INBOUND_OPERATION = {
    "operationId": "inbound_alert",
    "summary": "Receive an alert from outside (TradingView and the like)",
    "description": (
        "Creates a signal from an alert, published as the token's publisher with the token's source. "
        "JSON: the fields of `POST /api/signals/` (without `source`) plus an optional `alert_id`. "
        "Text: one line such as `BTCUSDT long entry=65000 sl=64000 tp=66000,67000 conf=80 tf=1h id=abc "
        "note=\"RSI cross\"` (several `tp` prices make a ladder in equal portions). A repeat of the same "
        "alert (its `alert_id`, else the body's SHA-256) within INBOUND_DEDUP_SECONDS answers 200 with the "
        "first signal. Tokens are made with `manage.py inbound_token_create` and stored only as a hash."
    ),
    "tags": ["inbound"],
    "parameters": [{"in": "path", "name": "token", "required": True, "schema": {"type": "string"},
                    "description": "the inbound token (the only credential)"}],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "description": "the create fields, plus alert_id",
                                        "additionalProperties": True}},
        "text/plain": {"schema": {"type": "string", "maxLength": 16384}},
    }},
    "responses": {
        "201": {"description": "the signal made from this alert", "content": {"application/json": {"schema": _SIGNAL}}},
        "200": {"description": "a repeat of an alert already received: the first signal",
                "content": {"application/json": {"schema": _SIGNAL}}},
        "400": {"description": "a malformed alert; `errors` names every bad field",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["detail"],
                    "properties": {"detail": {"type": "string"},
                                   "errors": {"type": "object", "additionalProperties": {
                                       "type": "array", "items": {"type": "string"}}}}}}}},
        "401": {"description": "unknown or revoked token", "content": {"application/json": {"schema": _DETAIL}}},
        "403": {"description": "the token's publisher may no longer publish",
                "content": {"application/json": {"schema": _DETAIL}}},
        "405": {"description": "any method but POST"},
        "413": {"description": "a body over 16 KiB", "content": {"application/json": {"schema": _DETAIL}}},
        "429": {"description": "INBOUND_RATE exceeded for this token; see Retry-After",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": {"application/json": {"schema": _DETAIL}}},
        "503": {"description": "the database is temporarily unavailable; see Retry-After",
                "content": {"application/json": {"schema": _DETAIL}}},
    },
    "security": [{}],
}


def add_inbound_alert(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: adds POST /api/inbound/{token}/."""
    result.setdefault("paths", {})[INBOUND_PATH] = {"post": INBOUND_OPERATION}
    return result
