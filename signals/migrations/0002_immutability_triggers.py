"""The database itself refuses to delete or edit a signal.

Application code already refuses (model, queryset, admin, API), but a stray script,
a psql session or a future bug must hit the same wall. On PostgreSQL and SQLite:
  - signals_signal: DELETE, UPDATE (and TRUNCATE on PostgreSQL) are rejected;
  - signals_signaloutcome: DELETE (and TRUNCATE) rejected; UPDATE only while the
    outcome is still `open` (outcomes move forward once, never back).
Note for future migrations on SQLite: a table rebuild (ALTER of these tables) drops
triggers; such a migration must re-run `install_triggers`.
"""
from django.db import migrations

PG_INSTALL = r"""
CREATE OR REPLACE FUNCTION signals_refuse_signal_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signals are permanent: % on signals_signal is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION signals_outcome_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'signal outcomes are permanent: % on signals_signaloutcome is not allowed', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status <> 'open' THEN
        RAISE EXCEPTION 'outcome of signal % is already closed (%): it can only move forward once',
            OLD.signal_id, OLD.status USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.signal_id <> OLD.signal_id THEN
        RAISE EXCEPTION 'an outcome cannot move to another signal'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER signals_signal_immutable BEFORE UPDATE OR DELETE ON signals_signal
    FOR EACH ROW EXECUTE FUNCTION signals_refuse_signal_change();
CREATE TRIGGER signals_signal_no_truncate BEFORE TRUNCATE ON signals_signal
    FOR EACH STATEMENT EXECUTE FUNCTION signals_refuse_signal_change();
CREATE TRIGGER signals_outcome_forward BEFORE UPDATE OR DELETE ON signals_signaloutcome
    FOR EACH ROW EXECUTE FUNCTION signals_outcome_forward_only();
CREATE TRIGGER signals_outcome_no_truncate BEFORE TRUNCATE ON signals_signaloutcome
    FOR EACH STATEMENT EXECUTE FUNCTION signals_outcome_forward_only();
"""

PG_REMOVE = r"""
DROP TRIGGER IF EXISTS signals_signal_immutable ON signals_signal;
DROP TRIGGER IF EXISTS signals_signal_no_truncate ON signals_signal;
DROP TRIGGER IF EXISTS signals_outcome_forward ON signals_signaloutcome;
DROP TRIGGER IF EXISTS signals_outcome_no_truncate ON signals_signaloutcome;
DROP FUNCTION IF EXISTS signals_refuse_signal_change();
DROP FUNCTION IF EXISTS signals_outcome_forward_only();
"""

SQLITE_INSTALL = [
    """CREATE TRIGGER IF NOT EXISTS signals_signal_no_delete BEFORE DELETE ON signals_signal
       BEGIN SELECT RAISE(ABORT, 'signals are permanent: DELETE on signals_signal is not allowed'); END""",
    """CREATE TRIGGER IF NOT EXISTS signals_signal_no_update BEFORE UPDATE ON signals_signal
       BEGIN SELECT RAISE(ABORT, 'signals are permanent: UPDATE on signals_signal is not allowed'); END""",
    """CREATE TRIGGER IF NOT EXISTS signals_outcome_no_delete BEFORE DELETE ON signals_signaloutcome
       BEGIN SELECT RAISE(ABORT, 'signal outcomes are permanent: DELETE is not allowed'); END""",
    """CREATE TRIGGER IF NOT EXISTS signals_outcome_forward BEFORE UPDATE ON signals_signaloutcome
       WHEN OLD.status <> 'open' OR NEW.signal_id <> OLD.signal_id
       BEGIN SELECT RAISE(ABORT, 'signal outcome is already closed: it can only move forward once'); END""",
]

SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS signals_signal_no_delete",
    "DROP TRIGGER IF EXISTS signals_signal_no_update",
    "DROP TRIGGER IF EXISTS signals_outcome_no_delete",
    "DROP TRIGGER IF EXISTS signals_outcome_forward",
]


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    # Plain cursor without params: the PL/pgSQL bodies contain literal '%'.
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(PG_INSTALL)
        elif vendor == "sqlite":
            for statement in SQLITE_INSTALL:
                cursor.execute(statement)
    if vendor not in ("postgresql", "sqlite"):
        raise RuntimeError(f"No immutability triggers for database vendor {vendor!r}")


def remove_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(PG_REMOVE)
        elif vendor == "sqlite":
            for statement in SQLITE_REMOVE:
                cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("signals", "0001_initial")]
    operations = [migrations.RunPython(install_triggers, remove_triggers)]
