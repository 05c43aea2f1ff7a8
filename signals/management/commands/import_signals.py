"""`manage.py import_signals FILE`: import an export_signals file, all or nothing
(a door onto signals.transfer: every record is checked before anything is written)."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from signals.transfer import (DEFAULT_ID_PREFIX, FORMATS, TransferError, format_guess, import_apply, import_check,
                              import_read)

_SHOWN_PROBLEMS = 50


class Command(BaseCommand):
    help = ("Import signals and outcomes from an export_signals file (csv, json or ndjson). Every record is "
            "checked first; any problem is reported with its line and nothing is written. A rerun imports "
            "nothing twice (records are keyed on their external_id, else on --id-prefix + their exported id).")

    def add_arguments(self, parser):
        parser.add_argument("file", help="the file export_signals wrote ('-' reads stdin)")
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name, else its content")
        parser.add_argument("--id-prefix", default=DEFAULT_ID_PREFIX,
                            help=f"external_id given to records without one: prefix + exported id "
                                 f"(default {DEFAULT_ID_PREFIX!r}; use another per source database)")

    def handle(self, *args, file, format, id_prefix, **options):
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text") from None
        fmt = format or format_guess(file, text)
        try:
            plan, existing = import_check(import_read(text, fmt=fmt), id_prefix=id_prefix)
            with tqdm(total=len(plan), unit="signal", file=sys.stderr, disable=None) as bar:
                report = import_apply(plan, existing, progress=bar.update)
        except TransferError as exc:
            shown = exc.problems[:_SHOWN_PROBLEMS]
            more = len(exc.problems) - len(shown)
            lines = [f"  line {line}: {message}" for line, message in shown]
            if more:
                lines.append(f"  ... and {more} more")
            raise CommandError(f"{file}: {len(exc.problems)} problem(s); nothing was imported:\n" + "\n".join(lines))
        self.stdout.write(f"imported {len(report.created)} signal(s); {report.already} already imported before")
