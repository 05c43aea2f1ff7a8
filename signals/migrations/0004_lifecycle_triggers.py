"""Amendments are as permanent as signals; SQLite's table rebuilds lost the triggers.

- signals_signalevent: DELETE, UPDATE (and TRUNCATE on PostgreSQL) are refused, on
  PostgreSQL and SQLite, like signals_signal.
- SQLite: 0003 added columns to signals_signal and signals_signaloutcome, which SQLite
  does by rebuilding the table, and a rebuilt table has no triggers; 0002's triggers
  are installed again here (idempotent: CREATE TRIGGER IF NOT EXISTS). PostgreSQL
  keeps triggers across ALTER TABLE, and its outcome trigger already lets an OPEN
  outcome be updated (the tracker writes leg progress) while a closed one never is.
Note for future migrations on SQLite: a rebuild of any of these three tables must
re-run `install_triggers` from this module.
"""
from django.db import migrations

from signals.migrations import _triggers


def install_triggers(apps, schema_editor):
    _triggers.install_event_triggers(schema_editor)


def remove_triggers(apps, schema_editor):
    _triggers.remove_event_triggers(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("signals", "0003_lifecycle_schema")]
    operations = [migrations.RunPython(install_triggers, remove_triggers)]
