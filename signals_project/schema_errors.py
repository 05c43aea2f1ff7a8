"""OpenAPI: document the error answers every API operation can give.

drf-spectacular documents what a view returns on success and its declared errors,
but any operation may also answer 401 (no credentials), 403 (not allowed), 404,
405 (signals are never edited or deleted), 429 (throttled) and 503 (database
unavailable, see signals_project.database_outage). Clients and contract fuzzing
(schemathesis, faults/test_fuzz_api.py) read the schema: an answer it does not list
looks like a bug, so each one is listed with its JSON body.
"""
from __future__ import annotations

_BODY = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
_ERRORS = {
    "400": "bad input: field errors, or a detail",
    "401": "no valid credentials (session or `Authorization: Token`)",
    "403": "authenticated, but not allowed",
    "404": "no such object",
    "405": "method not allowed (signals are never edited or deleted)",
    "429": "throttled; retry after the `Retry-After` header",
    "503": "the database is unavailable; nothing was saved, retry after `Retry-After`",
}
_METHODS = ("get", "post", "put", "patch", "delete")


def document_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: add the common error responses to every
    operation that does not already describe them. Listed before the hook that adds
    the hand-written SSE operation, which documents its own answers."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in _ERRORS.items():
                responses.setdefault(code, {"description": description, "content": _BODY})
    return result
