"""Amendments are as permanent as signals: model, queryset, PostgreSQL and SQLite
(after the lifecycle migrations, which rebuild tables on SQLite) all refuse to delete
or edit them; the signal and outcome triggers still hold after those migrations."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

from signals.models import ImmutableSignalError, SignalEvent
from signals.services import signal_event_create

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def event(signal_factory, staff_user):
    signal = signal_factory()
    return signal_event_create(signal_id=signal.pk, event_type="move_stop", price="95", reason="original",
                               created_by=staff_user)


def test_it_refuses_to_delete_or_edit_an_event_instance(event):
    with pytest.raises(ImmutableSignalError, match="never be deleted"):
        event.delete()
    event.reason = "edited"
    with pytest.raises(ImmutableSignalError, match="never be edited"):
        event.save()
    assert SignalEvent.objects.get(pk=event.pk).reason == "original"


@pytest.mark.parametrize("operation", [
    lambda qs: qs.delete(),
    lambda qs: qs.update(reason="edited"),
    lambda qs: SignalEvent.objects.bulk_update(list(qs), ["reason"]),
    lambda qs: qs.first().signal.events.all().delete(),
], ids=["delete", "update", "bulk_update", "related-manager-delete"])
def test_it_refuses_queryset_deletes_and_updates_of_events(event, operation):
    with pytest.raises(ImmutableSignalError, match="permanent"):
        operation(SignalEvent.objects.all())
    assert list(SignalEvent.objects.values_list("reason", flat=True)) == ["original"]


def _refused(sql: str, params=None) -> str:
    with pytest.raises(DatabaseError) as caught:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    return str(caught.value)


@pytest.mark.parametrize("sql", [
    "DELETE FROM signals_signalevent",
    "DELETE FROM signals_signalevent WHERE id = %(id)s",
    "UPDATE signals_signalevent SET reason = 'edited' WHERE id = %(id)s",
    "UPDATE signals_signalevent SET price = 1 WHERE id = %(id)s",
])
def test_it_makes_postgresql_refuse_raw_event_deletes_and_updates(event, sql):
    assert "permanent" in _refused(sql, {"id": event.pk})
    assert SignalEvent.objects.get(pk=event.pk).reason == "original"


@pytest.mark.django_db(transaction=True)
def test_it_makes_postgresql_refuse_truncating_events(signal_factory, staff_user):
    signal = signal_factory()
    signal_event_create(signal_id=signal.pk, event_type="close", created_by=staff_user)
    for sql in ("TRUNCATE signals_signalevent", "TRUNCATE signals_signalevent CASCADE"):
        assert "permanent" in _refused(sql)
    assert SignalEvent.objects.count() == 1


def test_it_lets_postgresql_update_an_open_outcome_but_never_a_closed_one(signal_factory):
    signal = signal_factory()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE signals_signaloutcome SET legs = '[]', stop_price = 95 WHERE signal_id = %s",
                       [signal.pk])
        cursor.execute("UPDATE signals_signaloutcome SET status = 'cancelled' WHERE signal_id = %s", [signal.pk])
    assert "already closed" in _refused("UPDATE signals_signaloutcome SET stop_price = 96 WHERE signal_id = %s",
                                        [signal.pk])


@pytest.mark.slow
def test_it_makes_sqlite_refuse_event_and_signal_changes_after_the_lifecycle_migrations(tmp_path):
    """Migrate the embedded default's SQLite file to 0002, insert a signal, then run
    the lifecycle migrations (table rebuilds) and attack every table directly."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["VAR_DIR"] = str(tmp_path)
    script = (
        "from django.core.management import call_command;"
        "call_command('migrate', 'signals', '0002', interactive=False, verbosity=0);"
        "from django.db import connection;"
        "c = connection.cursor();"
        "c.execute(\"INSERT INTO signals_instrument(symbol, market, base, quote, tick_size, active) "
        "VALUES ('BTCUSDT', 'crypto', 'BTC', 'USDT', 0.01, 1)\");"
        "c.execute(\"INSERT INTO signals_signal(instrument_id, symbol, market, direction, entry_price, stop_loss, "
        "take_profit, confidence, timeframe, source, note, created_at) VALUES (1, 'BTCUSDT', 'crypto', 'long', "
        "100, 90, 120, 50, '1h', 'manual', 'old', '2026-01-01')\");"
        "c.execute(\"INSERT INTO signals_signaloutcome(signal_id, status) VALUES (1, 'open')\");"
        "call_command('migrate', interactive=False, verbosity=0);"
        "from django.contrib.auth.models import User;"
        "from signals.services import signal_event_create;"
        "u = User.objects.create_user('s', is_staff=True);"
        "from signals.services import signal_create, signal_outcome_close;"
        "s = signal_create(symbol='BTCUSDT', direction='long', entry_price='100', stop_loss='90',"
        " targets=[{'price': '110', 'portion': '0.5'}, {'price': '120', 'portion': '0.5'}], confidence=5).signal;"
        "signal_event_create(signal_id=s.pk, event_type='cancel', created_by=u);"
        "e = signal_event_create(signal_id=1, event_type='close', created_by=u).id;"
        "signal_outcome_close(signal_id=1, status='tp_hit', exit_price='120');"
        "print(e)"
    )
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    event_id = int(done.stdout.strip().splitlines()[-1])
    db = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        for sql in ("DELETE FROM signals_signalevent", "UPDATE signals_signalevent SET reason = 'x'",
                    "DELETE FROM signals_signal", "UPDATE signals_signal SET note = 'x'",
                    "DELETE FROM signals_signaloutcome"):
            with pytest.raises(sqlite3.IntegrityError, match="permanent"):
                db.execute(sql)
        with pytest.raises(sqlite3.IntegrityError, match="already closed"):
            db.execute("UPDATE signals_signaloutcome SET status = 'open' WHERE signal_id = 1")
        # The statistics were kept on SQLite too: the migrated signal (backfilled, then
        # closed +2 R) and the new one (cancelled), one summary row per source and day.
        counts = db.execute("SELECT sum(signals), sum(closed), sum(wins), sum(cancelled), sum(r_sum) "
                            "FROM signals_sourcedaystats").fetchone()
        assert tuple(float(v) for v in counts) == (2, 1, 1, 1, 2)
        row = db.execute("SELECT s.note, s.targets, e.id FROM signals_signal s "
                         "JOIN signals_signalevent e ON e.signal_id = s.id").fetchone()
        assert row == ("old", "[]", event_id)
    finally:
        db.close()
