"""How every payload writes a time: ISO 8601 in UTC with a Z.

A pure module (no Django), so pure pipeline code (sessions, backtests) formats
times by the same rule as the API and the WebSocket frames.
"""
from __future__ import annotations

import datetime as dt


def iso_utc(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as every payload writes times."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
