"""Moving signals (with their outcomes) between databases: export and import.

Why here and not in the commands: the rules (what a record holds, how a file is
checked, what "already imported" means) are plain functions the commands, the tests
and a future API can share. Export streams (`.iterator()`, one record in memory at a
time); import checks every record before writing any, then writes all of them in one
transaction through `signal_create` (the one way in) and the outcome service.

Identity across databases: ids are per database, so an imported signal gets a new
id and keeps where it came from in `external_id`: the exported `external_id` when it
had one, else `<id prefix><exported id>` (default prefix "import:"). A rerun finds
those and imports nothing twice; an existing signal with that external_id but other
content is a collision, reported, never overwritten. Amendment events are not
transferred (the outcome they produced is).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, Iterable, Iterator

from django.db import transaction
from django.utils.dateparse import parse_datetime

from .models import OutcomeStatus, Signal
from .prices import PriceError, decimal_parse, decimal_str
from .selectors import iso_utc
from .services import SignalValidationError, signal_create, signal_outcome_progress, signal_validate
from .services.outcomes import legs_normalize

FORMATS = ("csv", "json", "ndjson")
EXPORT_FILTERS = ("symbol", "market", "source", "direction", "outcome")
DEFAULT_ID_PREFIX = "import:"
_SIGNAL_FIELDS = ("id", "external_id", "symbol", "market", "direction", "entry_price", "stop_loss", "take_profit",
                  "targets", "stop_rule", "confidence", "timeframe", "source", "note", "created_at", "expires_at",
                  "trigger")
_OUTCOME_FIELDS = ("status", "closed_at", "exit_price", "r_multiple", "legs", "stop_price", "evaluated_until",
                   "mfe_r", "mae_r", "state")
_JSON_COLUMNS = {"targets", "stop_rule", "trigger", "outcome_legs", "outcome_state"}
CSV_COLUMNS = (*_SIGNAL_FIELDS, *(f"outcome_{name}" for name in _OUTCOME_FIELDS))
# Compared to tell "this record was imported before" from "another signal holds its key".
_IDENTITY = ("symbol", "direction", "entry_price", "stop_loss", "created_at")


class TransferError(Exception):
    """A file that cannot be imported; `problems` lists (line, message), all of them."""

    def __init__(self, problems: list[tuple[int, str]]):
        self.problems = problems
        super().__init__("\n".join(f"line {line}: {message}" for line, message in problems))


# --- export --------------------------------------------------------------------------

def export_queryset(*, filters: dict[str, str], since: dt.datetime | None = None, until: dt.datetime | None = None):
    """Signals to export, oldest first, with their outcomes joined (one query per chunk)."""
    qs = Signal.objects.select_related("outcome").order_by("id")
    for name in ("symbol", "market", "source", "direction"):
        if filters.get(name):
            qs = qs.filter(**{name: filters[name].upper() if name == "symbol" else filters[name]})
    if filters.get("outcome"):
        qs = qs.filter(outcome__status=filters["outcome"])
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def export_record(signal: Signal) -> dict[str, Any]:
    """One signal and its outcome as a JSON-ready record (the ndjson/json line)."""
    outcome = getattr(signal, "outcome", None)
    trigger = None
    if signal.trigger_config_id is not None:
        trigger = {"config_id": signal.trigger_config_id, "timeframe": signal.trigger_timeframe,
                   "candle_open_time": iso_utc(signal.trigger_candle_open_time)}
    return {
        "id": signal.id, "external_id": signal.external_id, "symbol": signal.symbol, "market": signal.market,
        "direction": signal.direction, "entry_price": decimal_str(signal.entry_price),
        "stop_loss": decimal_str(signal.stop_loss), "take_profit": decimal_str(signal.take_profit),
        "targets": signal.target_ladder, "stop_rule": signal.stop_rule, "confidence": signal.confidence,
        "timeframe": signal.timeframe, "source": signal.source, "note": signal.note,
        "created_at": iso_utc(signal.created_at), "expires_at": iso_utc(signal.expires_at), "trigger": trigger,
        "outcome": None if outcome is None else {
            "status": outcome.status, "closed_at": iso_utc(outcome.closed_at),
            "exit_price": decimal_str(outcome.exit_price), "r_multiple": decimal_str(outcome.r_multiple),
            "legs": outcome.legs, "stop_price": decimal_str(outcome.stop_price),
            "evaluated_until": iso_utc(outcome.evaluated_until), "mfe_r": decimal_str(outcome.mfe_r),
            "mae_r": decimal_str(outcome.mae_r), "state": outcome.state,
        },
    }


def _csv_row(record: dict[str, Any]) -> list[str]:
    flat = {name: record[name] for name in _SIGNAL_FIELDS}
    for name in _OUTCOME_FIELDS:
        flat[f"outcome_{name}"] = (record["outcome"] or {}).get(name)
    return ["" if flat[c] is None else json.dumps(flat[c]) if c in _JSON_COLUMNS else str(flat[c])
            for c in CSV_COLUMNS]


def export_write(signals: Iterable[Signal], out: IO[str], *, fmt: str) -> int:
    """Write `signals` to `out` in `fmt`, one record at a time. Returns the count."""
    count = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    elif fmt == "json":
        out.write("[")
    for signal in signals:
        record = export_record(signal)
        if writer is not None:
            writer.writerow(_csv_row(record))
        else:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            out.write((",\n" if count else "\n") + line if fmt == "json" else line + "\n")
        count += 1
    if fmt == "json":
        out.write("\n]\n")
    return count


# --- reading a file ------------------------------------------------------------------

def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"symbol", "direction", "entry_price", "stop_loss", "confidence", "created_at"} - set(
        reader.fieldnames or ())
    if missing:
        yield 1, f"the header lacks the column(s) {', '.join(sorted(missing))} (export_signals writes them)"
        return
    line = reader.line_num + 1
    for row in reader:
        record: dict[str, Any] = {}
        outcome: dict[str, Any] = {}
        problem = None
        for column, raw in row.items():
            if column is None:  # more cells than header columns
                problem = "has more cells than the header has columns"
                continue
            value: Any = raw if raw != "" else None
            if column in _JSON_COLUMNS and value is not None:
                try:
                    value = json.loads(value)
                except ValueError:
                    problem = f"{column}: not valid JSON"
            if column.startswith("outcome_"):
                outcome[column.removeprefix("outcome_")] = value
            else:
                record[column] = value
        if any(value is not None for value in outcome.values()):
            record["outcome"] = outcome
        yield line, problem or record
        line = reader.line_num + 1


def _json_records(text: str, *, array: bool) -> Iterator[tuple[int, dict[str, Any] | str]]:
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)

    def skip(pos: int) -> int:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(pos)
    if array:
        if not text.startswith("[", pos):
            yield text.count("\n", 0, pos) + 1, "a JSON export starts with '['"
            return
        pos = skip(pos + 1)
    while pos < end:
        line = text.count("\n", 0, pos) + 1
        if array and text[pos] == "]":
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            yield line, f"not valid JSON ({exc.msg})"
            return
        yield line, value if isinstance(value, dict) else "a record must be a JSON object"
        pos = skip(pos)
        if array and pos < end and text[pos] == ",":
            pos = skip(pos + 1)
    if array:
        yield text.count("\n") + 1, "the JSON array is not closed with ']'"


def import_read(text: str, *, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, record) per record of a file, or (line, problem) where it is unreadable."""
    if fmt == "csv":
        return _csv_records(text)
    return _json_records(text, array=fmt == "json")


def format_guess(name: str, text: str) -> str:
    """The format from the file name, else from its first character."""
    for fmt in FORMATS:
        if name.lower().endswith(f".{fmt}"):
            return fmt
    head = text.lstrip()[:1]
    return "json" if head == "[" else "ndjson" if head == "{" else "csv"


# --- checking and importing ----------------------------------------------------------

@dataclass
class _Planned:
    line: int
    key: str
    fields: dict[str, Any]
    outcome: dict[str, Any] | None


@dataclass
class ImportReport:
    created: list[int] = field(default_factory=list)  # new ids, in file order
    already: int = 0  # records found imported before (a rerun)


def _when(value: Any, name: str, problems: list[str], *, required: bool = False) -> dt.datetime | None:
    if value in (None, ""):
        if required:
            problems.append(f"{name}: required")
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        problems.append(f"{name}: not an ISO 8601 time with a zone ({value!r})")
        return None
    return parsed


def _number(value: Any, name: str, problems: list[str]) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return decimal_parse(value)
    except PriceError as exc:
        problems.append(f"{name}: {exc}")
        return None


def _outcome(raw: Any, problems: list[str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("outcome: must be an object")
        return None
    status = raw.get("status") or OutcomeStatus.OPEN.value
    if status not in OutcomeStatus.values:
        problems.append(f"outcome status: {status!r} is not one of {', '.join(OutcomeStatus.values)}")
    closed_at = _when(raw.get("closed_at"), "outcome closed_at", problems, required=status != OutcomeStatus.OPEN)
    legs = raw.get("legs") or []
    try:
        legs_normalize(legs)
    except (TypeError, ValueError, KeyError, ArithmeticError):
        problems.append("outcome legs: each leg needs target, portion and a known status")
    state = raw.get("state") or {}
    if not isinstance(state, dict):
        problems.append("outcome state: must be an object")
    return {
        "status": status, "closed_at": closed_at, "legs": legs, "state": state,
        "exit_price": _number(raw.get("exit_price"), "outcome exit_price", problems),
        "r_multiple": _number(raw.get("r_multiple"), "outcome r_multiple", problems),
        "stop_price": _number(raw.get("stop_price"), "outcome stop_price", problems),
        "evaluated_until": _when(raw.get("evaluated_until"), "outcome evaluated_until", problems),
        "mfe_r": _number(raw.get("mfe_r"), "outcome mfe_r", problems),
        "mae_r": _number(raw.get("mae_r"), "outcome mae_r", problems),
    }


def _plan(line: int, record: dict[str, Any], *, id_prefix: str) -> tuple[_Planned | None, list[str]]:
    problems: list[str] = []
    external_id, source_id = record.get("external_id"), record.get("id")
    if external_id in (None, ""):
        if isinstance(source_id, str) and source_id.isdigit():
            source_id = int(source_id)
        if isinstance(source_id, bool) or not isinstance(source_id, int) or source_id <= 0:
            return None, ["needs a positive integer id or an external_id (the import is keyed on them)"]
        external_id = f"{id_prefix}{source_id}"
    trigger = record.get("trigger")
    if isinstance(trigger, dict) and isinstance(trigger.get("candle_open_time"), str):
        trigger = {**trigger, "candle_open_time": _when(trigger["candle_open_time"], "trigger candle_open_time",
                                                        problems)}
    confidence = record.get("confidence")
    fields = {
        "symbol": record.get("symbol"), "direction": record.get("direction"),
        "entry_price": record.get("entry_price"), "stop_loss": record.get("stop_loss"),
        "take_profit": record.get("take_profit"), "targets": record.get("targets"),
        "stop_rule": record.get("stop_rule"),
        "confidence": int(confidence) if isinstance(confidence, str) and confidence.isdigit() else confidence,
        "timeframe": record.get("timeframe") or "1h", "source": record.get("source") or "manual",
        "note": record.get("note") or "", "external_id": external_id, "trigger": trigger,
        "created_at": _when(record.get("created_at"), "created_at", problems, required=True),
        "expires_at": _when(record.get("expires_at"), "expires_at", problems),
    }
    outcome = _outcome(record.get("outcome"), problems)
    if not problems:
        # The same rules signal_create applies, without writing.
        errors = signal_validate(**{k: v for k, v in fields.items() if v is not None})
        problems += [f"{name}: {' '.join(messages)}" for name, messages in errors.items()]
    return _Planned(line, external_id, fields, outcome), problems


def _same(signal: Signal, fields: dict[str, Any]) -> bool:
    try:
        return (signal.symbol == str(fields["symbol"]).strip().upper() and signal.direction == fields["direction"]
                and signal.entry_price == Decimal(str(fields["entry_price"]))
                and signal.stop_loss == Decimal(str(fields["stop_loss"]))
                and signal.created_at == fields["created_at"])
    except ArithmeticError:
        return False


def import_check(records: Iterable[tuple[int, dict[str, Any] | str]], *,
                 id_prefix: str = DEFAULT_ID_PREFIX) -> tuple[list[_Planned], dict[str, Signal]]:
    """Check every record; returns (plan, signals imported before, by key).
    Raises TransferError listing every problem with its line: then nothing may be written."""
    problems: list[tuple[int, str]] = []
    plan: list[_Planned] = []
    seen: dict[str, int] = {}
    for line, record in records:
        if isinstance(record, str):
            problems.append((line, record))
            continue
        planned, found = _plan(line, record, id_prefix=id_prefix)
        problems += [(line, message) for message in found]
        if planned is None:
            continue
        if planned.key in seen:
            problems.append((line, f"external_id {planned.key!r} repeats line {seen[planned.key]}"))
        seen[planned.key] = line
        plan.append(planned)
    existing = {s.external_id: s for s in Signal.objects.filter(external_id__in=list(seen))}
    for planned in plan:
        found = existing.get(planned.key)
        if found is not None and not _same(found, planned.fields):
            problems.append((planned.line, f"external_id {planned.key!r} is already signal #{found.id} with other "
                                            f"content; nothing is overwritten (use another --id-prefix)"))
    if problems:
        raise TransferError(sorted(problems))
    return plan, existing


def import_apply(plan: list[_Planned], existing: dict[str, Signal], *, progress=None) -> ImportReport:
    """Write a checked plan in one transaction: all of it or, on any error, nothing."""
    report = ImportReport()
    with transaction.atomic():
        for planned in plan:
            if planned.key in existing:
                report.already += 1
            else:
                result = signal_create(**planned.fields)
                if not result.created:  # e.g. its trigger is taken by another signal here
                    raise TransferError([(planned.line, f"matches existing signal #{result.signal.id} "
                                                        f"(same trigger or key); nothing was imported")])
                report.created.append(result.signal.id)
                _outcome_write(result.signal.id, planned.outcome, line=planned.line)
            if progress is not None:
                progress(1)
    return report


def _outcome_write(signal_id: int, outcome: dict[str, Any] | None, *, line: int) -> None:
    if outcome is None or (outcome["status"] == OutcomeStatus.OPEN and outcome["evaluated_until"] is None
                           and not outcome["legs"]):
        return  # signal_create made the open outcome already
    try:
        signal_outcome_progress(signal_id=signal_id, legs=outcome["legs"], stop_price=outcome["stop_price"],
                                evaluated_until=outcome["evaluated_until"], state=outcome["state"],
                                mfe_r=outcome["mfe_r"], mae_r=outcome["mae_r"], status=outcome["status"],
                                closed_at=outcome["closed_at"], exit_price=outcome["exit_price"],
                                r_multiple=outcome["r_multiple"])
    except (ValueError, SignalValidationError) as exc:
        raise TransferError([(line, f"outcome: {exc}; nothing was imported")]) from exc
