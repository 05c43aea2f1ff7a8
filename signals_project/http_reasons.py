"""Reason phrases for every HTTP status under daphne.

Why: daphne answers through Twisted's `Request.setResponseCode(status)`, which takes
the reason phrase from `twisted.web.http.RESPONSES`; that table stops at the codes of
RFC 2616 plus a few, so a throttled request went out as "HTTP/1.1 429 Unknown Status"
(and 422, 428, 431, 451 likewise). `RESPONSES` is Twisted's public table of phrases:
it is completed here from the standard library's `http.HTTPStatus`, never overriding
a phrase Twisted already has. Idempotent; applied by asgi.py.
"""
from __future__ import annotations

from http import HTTPStatus


def missing_reason_phrases() -> dict[int, bytes]:
    """The codes the standard library knows and Twisted's table lacks, with phrases."""
    from twisted.web import http as twisted_http

    return {
        status.value: status.phrase.encode("ascii")
        for status in HTTPStatus
        if status.value not in twisted_http.RESPONSES
    }


def apply() -> None:
    try:
        from twisted.web import http as twisted_http
    except ImportError:  # not served by daphne/Twisted
        return
    twisted_http.RESPONSES.update(missing_reason_phrases())
