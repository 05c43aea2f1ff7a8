"""Never delete, never edit: the model, the queryset and the database itself refuse,
on PostgreSQL (the test database) and on SQLite (a scratch file migrated in a
subprocess, exactly as the embedded default run does)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from signals.models import ImmutableSignalError, Instrument, Signal, SignalOutcome
from signals.services import signal_outcome_close

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


# --- model and queryset ----------------------------------------------------------------

def test_it_refuses_to_delete_a_signal_instance(signal_factory):
    signal = signal_factory()
    with pytest.raises(ImmutableSignalError, match="never be deleted"):
        signal.delete()
    assert Signal.objects.filter(pk=signal.pk).exists()


def test_it_refuses_to_save_an_existing_signal(signal_factory):
    signal = signal_factory()
    signal.note = "edited"
    with pytest.raises(ImmutableSignalError, match="never be edited"):
        signal.save()
    with pytest.raises(ImmutableSignalError, match="never be edited"):
        signal.save(update_fields=["note"])
    assert Signal.objects.get(pk=signal.pk).note == ""


def test_it_refuses_to_overwrite_a_signal_through_a_new_instance_with_its_id(signal_factory):
    signal = signal_factory()
    impostor = Signal(id=signal.id, instrument=signal.instrument, symbol="BTCUSDT", market="crypto",
                      direction="long", entry_price=1, stop_loss=Decimal("0.5"), take_profit=2,
                      confidence=1, created_at=signal.created_at)
    with pytest.raises(ImmutableSignalError):
        impostor.save()
    assert Signal.objects.get(pk=signal.pk).entry_price == 100


@pytest.mark.parametrize("operation", [
    lambda qs: qs.delete(),
    lambda qs: qs.update(note="edited"),
    lambda qs: Signal.objects.bulk_update(list(qs), ["note"]),
    lambda qs: qs.filter(pk__gt=0).update(confidence=1),
    lambda qs: qs.first().instrument.signals.all().delete(),
    lambda qs: qs.update_or_create(pk=qs.first().pk, defaults={"note": "edited"}),
], ids=["delete", "update", "bulk_update", "filtered-update", "related-manager-delete", "update_or_create"])
def test_it_refuses_queryset_deletes_and_updates(signal_factory, operation):
    signal_factory(note="original")
    with pytest.raises(ImmutableSignalError, match="permanent"):
        operation(Signal.objects.all())
    assert list(Signal.objects.values_list("note", flat=True)) == ["original"]


def test_it_refuses_to_delete_outcomes(signal_factory):
    signal = signal_factory()
    with pytest.raises(ImmutableSignalError, match="never be deleted"):
        signal.outcome.delete()
    with pytest.raises(ImmutableSignalError, match="never be deleted"):
        SignalOutcome.objects.all().delete()
    assert SignalOutcome.objects.filter(pk=signal.pk).exists()


def test_it_protects_signals_from_instrument_and_user_deletion(signal_factory, staff_user):
    from signals.services import signal_create

    signal = signal_create(symbol="ETHUSDT", direction="short", entry_price="10", stop_loss="11",
                           take_profit="9", confidence=50, created_by=staff_user).signal
    with pytest.raises(ProtectedError):
        Instrument.objects.get(symbol="ETHUSDT").delete()
    with pytest.raises(ProtectedError):
        staff_user.delete()
    assert Signal.objects.filter(pk=signal.pk).exists()


# --- PostgreSQL triggers -------------------------------------------------------------------

def _refused(sql: str, params=None) -> str:
    """Run raw SQL that the database must reject; return its message."""
    with pytest.raises(DatabaseError) as caught:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    return str(caught.value)


def _allowed(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@pytest.mark.parametrize("sql", [
    "DELETE FROM signals_signal",
    "DELETE FROM signals_signal WHERE id = %(id)s",
    "UPDATE signals_signal SET note = 'edited' WHERE id = %(id)s",
    "UPDATE signals_signal SET entry_price = 101 WHERE id = %(id)s",
    "UPDATE signals_signal SET id = id WHERE id = %(id)s",
    "DELETE FROM signals_signaloutcome WHERE signal_id = %(id)s",
])
def test_it_makes_postgresql_refuse_raw_deletes_and_updates(signal_factory, sql):
    assert connection.vendor == "postgresql"
    signal = signal_factory(note="original")
    _refused_and_intact(sql, signal.id)


def _refused_and_intact(sql: str, signal_id: int, reason: str = "permanent") -> None:
    message = _refused(sql, {"id": signal_id})
    assert reason in message
    row = Signal.objects.select_related("outcome").get(pk=signal_id)
    assert (row.note, row.entry_price, row.outcome.status) == ("original", 100, "open")


# Without CASCADE the foreign keys already stop a TRUNCATE; with them the trigger does.
# Django's FKs are DEFERRABLE INITIALLY DEFERRED, so the instrument DELETE fails at COMMIT.
TRUNCATES = [
    ("TRUNCATE signals_signal CASCADE", "permanent"),
    ("TRUNCATE signals_signaloutcome", "permanent"),
    ("TRUNCATE signals_signaloutcome, signals_signal, signals_idempotencyrecord, signals_signalevent",
     "permanent"),
    ("TRUNCATE signals_instrument CASCADE", "permanent"),
    ("TRUNCATE signals_signal", "foreign key"),
    ("DELETE FROM signals_instrument", "foreign key"),
]


@pytest.mark.django_db(transaction=True)
def test_it_makes_postgresql_refuse_truncate_even_by_cascade(signal_factory):
    # Committed rows (transactional test): TRUNCATE inside the transaction that has
    # just inserted them fails for another reason (pending FK trigger events). Each
    # statement runs in its own transaction, so one test covers them all.
    signal = signal_factory(note="original")
    for sql, reason in TRUNCATES:
        try:
            _refused_and_intact(sql, signal.id, reason)
        except (AssertionError, pytest.fail.Exception) as exc:
            pytest.fail(f"{sql}: {exc}")
    assert Signal.objects.count() == SignalOutcome.objects.count() == 1


def test_it_lets_postgresql_move_an_outcome_forward_once(signal_factory):
    signal = signal_factory()
    assert _allowed("UPDATE signals_signaloutcome SET status = 'tp_hit', exit_price = 120, closed_at = now() "
                    "WHERE signal_id = %s", [signal.id]) == 1
    assert "already closed" in _refused("UPDATE signals_signaloutcome SET status = 'open' WHERE signal_id = %s",
                                        [signal.id])
    assert "already closed" in _refused(
        "UPDATE signals_signaloutcome SET status = 'sl_hit' WHERE signal_id = %s", [signal.id])
    assert "permanent" in _refused("DELETE FROM signals_signaloutcome WHERE signal_id = %s", [signal.id])
    assert SignalOutcome.objects.get(pk=signal.id).status == "tp_hit"


def test_it_refuses_to_move_an_outcome_to_another_signal(signal_factory):
    first, second = signal_factory(), signal_factory()
    message = _refused("UPDATE signals_signaloutcome SET signal_id = %s WHERE signal_id = %s",
                       [second.id + 1000, first.id])
    assert "another signal" in message


def test_it_refuses_a_service_close_after_a_raw_close(signal_factory):
    signal = signal_factory()
    _allowed("UPDATE signals_signaloutcome SET status = 'expired' WHERE signal_id = %s", [signal.id])
    assert signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price=Decimal("120")) is None


# --- SQLite triggers (embedded default) -------------------------------------------------------

def _manage(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["VAR_DIR"] = str(var_dir)
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_it_makes_sqlite_refuse_raw_deletes_and_updates(tmp_path):
    """Migrate the embedded default's SQLite file (no DATABASE_URL) from scratch, create
    a signal through the service, then attack it with sqlite3 directly."""
    # One process (migrate, then create) saves a Django start-up on slow CI cores.
    created = _manage(tmp_path, "shell", "-c", (
        "from django.core.management import call_command;"
        "call_command('migrate', interactive=False, verbosity=0);"
        "from signals.services import demo_instruments_seed, signal_create;"
        "demo_instruments_seed();"
        "print(signal_create(symbol='BTCUSDT', direction='long', entry_price='100', stop_loss='90',"
        " take_profit='120', confidence=70).signal.id)"
    ))
    signal_id = int(created.stdout.strip().splitlines()[-1])
    db = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        refused = [
            ("DELETE FROM signals_signal", "permanent"),
            ("DELETE FROM signals_signal WHERE id = ?", "permanent"),
            ("UPDATE signals_signal SET note = 'edited' WHERE id = ?", "permanent"),
            ("UPDATE signals_signal SET entry_price = 101 WHERE id = ?", "permanent"),
            ("DELETE FROM signals_signaloutcome WHERE signal_id = ?", "permanent"),
        ]
        for sql, word in refused:
            with pytest.raises(sqlite3.IntegrityError, match=word):
                db.execute(sql, [signal_id] if "?" in sql else [])
        db.execute("UPDATE signals_signaloutcome SET status = 'tp_hit', exit_price = 120 WHERE signal_id = ?",
                   [signal_id])
        for sql in ("UPDATE signals_signaloutcome SET status = 'open' WHERE signal_id = ?",
                    "UPDATE signals_signaloutcome SET status = 'sl_hit' WHERE signal_id = ?"):
            with pytest.raises(sqlite3.IntegrityError, match="already closed"):
                db.execute(sql, [signal_id])
        row = db.execute("SELECT s.note, s.entry_price, o.status FROM signals_signal s "
                         "JOIN signals_signaloutcome o ON o.signal_id = s.id WHERE s.id = ?", [signal_id]).fetchone()
        assert (row[0], float(row[1]), row[2]) == ("", 100.0, "tp_hit")
        assert db.execute("SELECT count(*) FROM signals_signal").fetchone()[0] == 1
    finally:
        db.close()
