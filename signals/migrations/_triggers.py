"""Database-level immutability of signal events, and re-installation of every SQLite
trigger after a table rebuild (shared by migrations; the loader skips `_` modules).

A SQLite ALTER that Django cannot express in place rebuilds the table (copy, drop,
rename), and the new table has no triggers. Any migration that changes
signals_signal, signals_signaloutcome or signals_signalevent on SQLite must call
`install_event_triggers` afterwards; it is idempotent.
"""
from __future__ import annotations

import importlib

_immutability = importlib.import_module("signals.migrations.0002_immutability_triggers")

PG_EVENT_INSTALL = r"""
CREATE OR REPLACE FUNCTION signals_refuse_event_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signal events are permanent: % on signals_signalevent is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS signals_event_immutable ON signals_signalevent;
DROP TRIGGER IF EXISTS signals_event_no_truncate ON signals_signalevent;
CREATE TRIGGER signals_event_immutable BEFORE UPDATE OR DELETE ON signals_signalevent
    FOR EACH ROW EXECUTE FUNCTION signals_refuse_event_change();
CREATE TRIGGER signals_event_no_truncate BEFORE TRUNCATE ON signals_signalevent
    FOR EACH STATEMENT EXECUTE FUNCTION signals_refuse_event_change();
"""

PG_EVENT_REMOVE = r"""
DROP TRIGGER IF EXISTS signals_event_immutable ON signals_signalevent;
DROP TRIGGER IF EXISTS signals_event_no_truncate ON signals_signalevent;
DROP FUNCTION IF EXISTS signals_refuse_event_change();
"""

SQLITE_EVENT_INSTALL = [
    """CREATE TRIGGER IF NOT EXISTS signals_event_no_delete BEFORE DELETE ON signals_signalevent
       BEGIN SELECT RAISE(ABORT, 'signal events are permanent: DELETE on signals_signalevent is not allowed'); END""",
    """CREATE TRIGGER IF NOT EXISTS signals_event_no_update BEFORE UPDATE ON signals_signalevent
       BEGIN SELECT RAISE(ABORT, 'signal events are permanent: UPDATE on signals_signalevent is not allowed'); END""",
]

SQLITE_EVENT_REMOVE = [
    "DROP TRIGGER IF EXISTS signals_event_no_delete",
    "DROP TRIGGER IF EXISTS signals_event_no_update",
]


def install_event_triggers(schema_editor) -> None:
    """Event triggers on both vendors; on SQLite also every signal/outcome trigger."""
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(PG_EVENT_INSTALL)
        elif vendor == "sqlite":
            for statement in [*_immutability.SQLITE_INSTALL, *SQLITE_EVENT_INSTALL]:
                cursor.execute(statement)
        else:
            raise RuntimeError(f"No immutability triggers for database vendor {vendor!r}")


def remove_event_triggers(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(PG_EVENT_REMOVE)
        elif vendor == "sqlite":
            for statement in SQLITE_EVENT_REMOVE:
                cursor.execute(statement)
