"""The one rule for a live feed's query: where to resume and which signals to show.

The WebSocket consumer, the SSE stream and the dashboard page all accept the same
`symbol` / `market` filters (and the streams `after_id` / `after_event_id`); parsing
them in one place keeps "what a valid symbol is" from drifting between doors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .models import Market

MAX_SYMBOL_LENGTH = 32


class QueryError(ValueError):
    """A client-facing reason why a stream query was refused."""


@dataclass(frozen=True, slots=True)
class StreamQuery:
    after_id: int | None  # None: live only, from the newest signal at subscribe time
    after_event_id: int | None  # None: amendments live only (no replay)
    filters: dict[str, str] = field(default_factory=dict)


def feed_filters_clean(raw: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Normalise `symbol` and `market`. Returns (filters, errors): a bad value is
    left out of `filters` and explained, per field, in `errors`."""
    filters: dict[str, str] = {}
    errors: dict[str, str] = {}
    symbol = (raw.get("symbol") or "").strip().upper()
    if symbol:
        if len(symbol) <= MAX_SYMBOL_LENGTH and symbol.isascii() and symbol.isalnum():
            filters["symbol"] = symbol
        else:
            errors["symbol"] = f"symbol must be 1-{MAX_SYMBOL_LENGTH} letters or digits, like BTCUSDT"
    market = (raw.get("market") or "").strip().lower()
    if market:
        if market in Market.values:
            filters["market"] = market
        else:
            errors["market"] = f"market must be one of: {', '.join(Market.values)}"
    return filters, errors


def _last(query: Mapping[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[-1]


def _id_param(query: Mapping[str, list[str]], name: str) -> int | None:
    raw = _last(query, name).strip()
    if raw == "":
        return None
    # isdecimal() alone accepts non-ASCII digits and huge values; ids are bigints.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise QueryError(f"{name} must be a non-negative integer")
    return int(raw)


def stream_query_parse(query: Mapping[str, list[str]]) -> StreamQuery:
    """Validate a stream's parsed query string (`parse_qs` output). Raises
    QueryError with the first problem, worded for the client."""
    after_id = _id_param(query, "after_id")
    after_event_id = _id_param(query, "after_event_id")
    filters, errors = feed_filters_clean({"symbol": _last(query, "symbol"), "market": _last(query, "market")})
    if errors:
        raise QueryError(next(iter(errors.values())))
    return StreamQuery(after_id=after_id, after_event_id=after_event_id, filters=filters)
