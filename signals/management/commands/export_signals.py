"""`manage.py export_signals`: stream signals with their outcomes to CSV, JSON or
NDJSON (a door onto signals.transfer; constant memory whatever the table size)."""
from __future__ import annotations

import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from signals.models import Direction, Market, OutcomeStatus
from signals.transfer import FORMATS, export_queryset, export_write

_CHUNK = 2000


def _moment(value: str | None, option: str):
    if value is None:
        return None
    moment = parse_datetime(value)
    if moment is None and parse_date(value) is not None:
        moment = dt.datetime.combine(parse_date(value), dt.time())
    if moment is None:
        raise CommandError(f"{option} {value!r}: use a date (2026-11-01) or an ISO time (2026-11-01T12:00:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class Command(BaseCommand):
    help = "Export signals and their outcomes (oldest first) as csv, json or ndjson, to stdout or a file."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="ndjson", help="default: ndjson")
        parser.add_argument("-o", "--output", help="write to this file (with a progress bar) instead of stdout")
        parser.add_argument("--symbol", help="only this symbol")
        parser.add_argument("--market", choices=Market.values)
        parser.add_argument("--source", help="only this source (manual or a strategy name)")
        parser.add_argument("--direction", choices=Direction.values)
        parser.add_argument("--outcome", choices=OutcomeStatus.values, help="only outcomes with this status")
        parser.add_argument("--since", help="created at or after (date or ISO time, UTC if no zone)")
        parser.add_argument("--until", help="created before (date or ISO time, UTC if no zone)")

    def handle(self, *args, format, output, since, until, **options):
        filters = {name: options[name] for name in ("symbol", "market", "source", "direction", "outcome")
                   if options.get(name)}
        qs = export_queryset(filters=filters, since=_moment(since, "--since"), until=_moment(until, "--until"))
        if output is None:
            count = export_write(qs.iterator(chunk_size=_CHUNK), self.stdout, fmt=format)
            self.stderr.write(f"exported {count} signal(s)")
            return
        try:
            handle = open(output, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}") from None
        with handle, tqdm(total=qs.count(), unit="signal", file=sys.stderr, disable=None) as bar:
            def rows():
                for signal in qs.iterator(chunk_size=_CHUNK):
                    yield signal
                    bar.update(1)

            count = export_write(rows(), handle, fmt=format)
        self.stderr.write(f"exported {count} signal(s) to {output}")
