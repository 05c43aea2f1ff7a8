"""export_signals / import_signals: streaming export in three formats, an import that
checks every record first (line numbers, nothing written on any problem), is atomic,
idempotent on the exported id/external_id, never overwrites, and round-trips into a
fresh database with the same signals and outcomes."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from signals.models import Signal, SignalOutcome
from signals.services import signal_create, signal_outcome_progress
from signals.transfer import FORMATS, export_queryset, export_record

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db
# What must survive a transfer (ids and keys are per database).
_PER_DATABASE = ("id", "external_id")


def _history(signal_factory, *, trigger: bool = True) -> list[Signal]:
    """Signals of every shape: a ladder with a trailing rule and a closed outcome, a
    trigger, an external id, a short, an expiry, a note with commas, quotes and lines.
    (Copies into the same database cannot keep a trigger: it is unique per database.)"""
    past = timezone.now() - dt.timedelta(days=3)
    ladder = signal_create(
        symbol="ETHUSDT", direction="long", entry_price="2000", stop_loss="1900", confidence=80, timeframe="4h",
        targets=[{"price": "2100", "portion": "0.5"}, {"price": "2200", "portion": "0.5"}],
        stop_rule={"type": "breakeven", "after_target": 1}, note='first, "quoted"\nsecond line',
        created_at=past,
    ).signal
    closed_at = past + dt.timedelta(hours=5)
    signal_outcome_progress(
        signal_id=ladder.id, status="sl_hit", closed_at=closed_at, exit_price="2000", r_multiple="0.5",
        legs=[{"target": "2100", "portion": "0.5", "status": "tp_hit", "closed_at": past + dt.timedelta(hours=2),
               "exit_price": "2100", "r": "1"},
              {"target": "2200", "portion": "0.5", "status": "sl_hit", "closed_at": closed_at,
               "exit_price": "2000", "r": "0"}],
        stop_price="2000", evaluated_until=closed_at, state={"peak": "2150"}, mfe_r="1.5", mae_r="-0.2")
    automated = signal_create(
        symbol="BTCUSDT", direction="short", entry_price="65000.5", stop_loss="66000", take_profit="60000",
        confidence=55, timeframe="1h", source="ema_cross",
        trigger={"config_id": 7, "timeframe": "1h", "candle_open_time": past.replace(minute=0, second=0,
                                                                                     microsecond=0)}
        if trigger else None,
        created_at=past + dt.timedelta(minutes=1), expires_at=past + dt.timedelta(days=1)).signal
    external = signal_create(symbol="SOLUSDT", direction="long", entry_price="150", stop_loss="140",
                             take_profit="170", confidence=60, external_id="tv-alert-42").signal
    plain = signal_factory()
    return [ladder, automated, external, plain]


def _portable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in _PER_DATABASE}


def _export(path: Path, fmt: str, **filters) -> None:
    call_command("export_signals", "--format", fmt, "-o", str(path), *[f"--{k}={v}" for k, v in filters.items()])


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_round_trips_every_format_into_new_rows(fmt, signal_factory, tmp_path):
    originals = _history(signal_factory, trigger=False)
    path = tmp_path / f"signals.{fmt}"
    _export(path, fmt)
    before = {s.id for s in Signal.objects.all()}
    # Another prefix: the same file seen as coming from another database, so new rows.
    call_command("import_signals", str(path), "--id-prefix", "copy:")
    copies = list(export_queryset(filters={}).exclude(id__in=before))
    # A record with its own external_id is the very signal already here: not copied.
    copied = [o for o in originals if not o.external_id]
    assert len(copies) == len(copied) == len(originals) - 1
    for original, copy in zip(copied, copies):
        original.refresh_from_db()
        assert _portable(export_record(copy)) == _portable(export_record(original))
        assert copy.external_id == f"copy:{original.id}"


def test_it_imports_nothing_twice(signal_factory, tmp_path):
    _history(signal_factory, trigger=False)
    path = tmp_path / "signals.ndjson"
    _export(path, "ndjson")
    call_command("import_signals", str(path), "--id-prefix", "copy:")
    count = Signal.objects.count()
    out = tmp_path / "second.txt"
    with out.open("w") as handle:
        call_command("import_signals", str(path), "--id-prefix", "copy:", stdout=handle)
    assert Signal.objects.count() == count
    assert "imported 0 signal(s); 4 already imported before" in out.read_text()


def test_it_reports_every_bad_record_with_its_line_and_writes_nothing(signal_factory, tmp_path):
    _history(signal_factory, trigger=False)
    path = tmp_path / "signals.ndjson"
    _export(path, "ndjson")
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad.update(symbol="NOSUCHCOIN", entry_price="abc")
    worse = json.loads(lines[2])
    worse["outcome"]["status"] = "won"
    lines[1], lines[2] = json.dumps(bad), json.dumps(worse)
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    count, outcomes = Signal.objects.count(), list(SignalOutcome.objects.values_list("signal_id", "status"))
    with pytest.raises(CommandError) as exc:
        call_command("import_signals", str(path), "--id-prefix", "copy:")
    message = str(exc.value)
    assert "nothing was imported" in message
    assert "line 2: symbol: Unknown symbol 'NOSUCHCOIN'" in message
    assert "line 2: entry_price:" in message
    assert "line 3: outcome status: 'won'" in message
    assert "line 5: not valid JSON" in message
    assert "line 1:" not in message and "line 4:" not in message
    assert Signal.objects.count() == count
    assert list(SignalOutcome.objects.values_list("signal_id", "status")) == outcomes


def test_it_reports_csv_problems_by_file_line_even_after_multiline_notes(signal_factory, tmp_path):
    _history(signal_factory)  # the first record's note spans two lines
    path = tmp_path / "signals.csv"
    _export(path, "csv")
    text = path.read_text().splitlines(keepends=True)
    # Line 1 header, lines 2-3 the first record (two-line note), line 4 the second.
    text[3] = text[3].replace("65000.5", "-5", 1)
    path.write_text("".join(text))
    with pytest.raises(CommandError, match=r"line 4: entry_price: Must be a positive price"):
        call_command("import_signals", str(path))


def test_it_never_overwrites_a_signal_holding_the_key(signal_factory, tmp_path):
    signals = _history(signal_factory)
    path = tmp_path / "signals.json"
    _export(path, "json")
    # Here, another signal already carries the key the first record would get.
    squatter = signal_create(symbol="BTCUSDT", direction="long", entry_price="1", stop_loss="0.5",
                             take_profit="2", confidence=1, external_id=f"import:{signals[0].id}").signal
    count = Signal.objects.count()
    with pytest.raises(CommandError, match=rf"external_id 'import:{signals[0].id}' is already signal #{squatter.id}"):
        call_command("import_signals", str(path))
    assert Signal.objects.count() == count
    squatter.refresh_from_db()
    assert squatter.entry_price == Decimal("1") and squatter.symbol == "BTCUSDT"


def test_it_is_atomic_when_a_write_fails_midway(signal_factory, tmp_path):
    _history(signal_factory, trigger=False)
    path = tmp_path / "signals.ndjson"
    _export(path, "ndjson")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # Two records with one trigger: checking finds nothing wrong with either (the
    # trigger's uniqueness is the database's rule); the second write is refused.
    trigger = {"config_id": 9, "timeframe": "1h", "candle_open_time": "2026-01-01T00:00:00Z"}
    records[1]["trigger"] = records[-1]["trigger"] = trigger
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    count = Signal.objects.count()
    with pytest.raises(CommandError, match="line 4: matches existing signal"):
        call_command("import_signals", str(path), "--id-prefix", "copy:")
    assert Signal.objects.count() == count


def test_it_exports_with_filters_and_a_constant_number_of_queries(signal_factory, tmp_path,
                                                                    django_assert_max_num_queries):
    _history(signal_factory)
    for _ in range(30):
        signal_factory()
    path = tmp_path / "all.ndjson"
    with django_assert_max_num_queries(4):
        _export(path, "ndjson")
    assert len(path.read_text().splitlines()) == Signal.objects.count()
    shorts = tmp_path / "shorts.csv"
    _export(shorts, "csv", direction="short", outcome="open")
    rows = shorts.read_text().splitlines()
    assert len(rows) == 2 and "65000.5" in rows[1]
    closed = tmp_path / "closed.json"
    _export(closed, "json", outcome="sl_hit", symbol="ethusdt")
    assert [r["symbol"] for r in json.loads(closed.read_text())] == ["ETHUSDT"]


def test_it_refuses_a_bad_option_with_a_clear_error(tmp_path, db):
    with pytest.raises(CommandError, match="--since 'yesterday'"):
        call_command("export_signals", "--since", "yesterday")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_signals", str(tmp_path / "missing.ndjson"))


@pytest.mark.slow
def test_it_round_trips_into_a_fresh_database(signal_factory, tmp_path):
    """Export here (PostgreSQL), import into a brand-new SQLite database in another
    process, export there: the same signals and outcomes, record for record."""
    originals = _history(signal_factory)
    source = tmp_path / "source.ndjson"
    _export(source, "ndjson")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["VAR_DIR"] = str(tmp_path / "fresh")
    script = (
        "set -e\n"
        f"{sys.executable} manage.py migrate --no-input -v 0\n"
        f"{sys.executable} manage.py shell -c 'from signals.services import demo_instruments_seed; "
        "demo_instruments_seed()'\n"
        f"{sys.executable} manage.py import_signals {source}\n"
        f"{sys.executable} manage.py import_signals {source}\n"
        f"{sys.executable} manage.py export_signals -o {tmp_path / 'copy.ndjson'}\n"
    )
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 4 signal(s); 0 already imported before" in result.stdout
    assert "imported 0 signal(s); 4 already imported before" in result.stdout
    copies = [json.loads(line) for line in (tmp_path / "copy.ndjson").read_text().splitlines()]
    expected = [json.loads(line) for line in source.read_text().splitlines()]
    assert [_portable(c) for c in copies] == [_portable(e) for e in expected]
    assert [c["external_id"] for c in copies] == [o.external_id or f"import:{o.id}" for o in originals]
