"""CSV rows of the dashboard's filtered view, for the export link.

Streamed (a generator over a server-side iterator), so exporting years of signals
never holds them all in memory. Each row is built from the public signal payload,
so the CSV says exactly what the API and the table say.
"""
from __future__ import annotations

import csv
from typing import Any, Iterable, Iterator

from django.db.models import QuerySet

from signals.models import Signal
from signals.selectors import signal_payload

COLUMNS = (
    "id", "created_at", "symbol", "market", "direction", "entry_price", "stop_loss", "take_profit",
    "confidence", "timeframe", "source", "expires_at", "outcome", "closed_at", "exit_price", "r_multiple", "note",
)
# Free text a spreadsheet would run as a formula (CSV injection): prefixed with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = ("source", "note")


class _Echo:
    """csv.writer wants a file; this one hands each formatted line back."""

    def write(self, value: str) -> str:
        return value


def _row(payload: dict[str, Any]) -> list[Any]:
    outcome = payload.get("outcome") or {}
    values = {**payload, "outcome": outcome.get("status", "open"), "closed_at": outcome.get("closed_at"),
              "exit_price": outcome.get("exit_price"), "r_multiple": outcome.get("r_multiple")}
    row = []
    for column in COLUMNS:
        value = values.get(column)
        if value is None:
            value = ""
        elif column in _TEXT_COLUMNS and str(value).startswith(_FORMULA_START):
            value = f"'{value}"
        row.append(value)
    return row


def csv_lines(signals: QuerySet[Signal] | Iterable[Signal]) -> Iterator[str]:
    """The header, then one CSV line per signal, in the queryset's order."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    rows = signals.iterator(chunk_size=1000) if isinstance(signals, QuerySet) else signals
    for signal in rows:
        yield writer.writerow(_row(signal_payload(signal)))
