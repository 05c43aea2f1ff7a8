"""CSV of the dashboard's filtered view, for the export link.

The rows are written by signals.transfer, the same writer as `manage.py
export_signals --format csv`, so a file downloaded here can be read back by
`import_signals`. Streamed in chunks (a keyset walk over ids), so exporting years of
signals never holds them all in memory.
"""
from __future__ import annotations

import io
from typing import Iterator

from django.db.models import QuerySet

from signals.models import Signal
from signals.transfer import export_write

CHUNK = 500


def csv_chunks(signals: QuerySet[Signal], *, chunk: int = CHUNK) -> Iterator[str]:
    """The CSV text of `signals` (newest first), one piece per `chunk` rows; the
    header once, at the start, even when nothing matches."""
    before = None
    first = True
    while True:
        page = signals if before is None else signals.filter(id__lt=before)
        rows = list(page.order_by("-id")[:chunk])
        buffer = io.StringIO()
        export_write(rows, buffer, fmt="csv")
        text = buffer.getvalue()
        # export_write starts every piece with the header: keep only the first one.
        yield text if first else text.split("\n", 1)[1]
        first = False
        if len(rows) < chunk:
            return
        before = rows[-1].id
