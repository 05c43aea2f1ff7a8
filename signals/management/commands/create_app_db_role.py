"""`manage.py create_app_db_role ROLE`: the PostgreSQL role the application should
connect as in production.

Never-delete is enforced by triggers, but the table owner could still disable a
trigger or drop a table. The application therefore runs as a role that owns
nothing and was never granted DELETE or TRUNCATE on the permanent tables (signals,
their outcomes and amendments) nor UPDATE on signals and amendments; migrations run
as the owner. Safe to run again (after each `migrate`, so new tables get grants too).
"""
from __future__ import annotations

import re
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from psycopg import sql

from signals.models import Signal, SignalEvent, SignalOutcome

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PERMANENT_TABLES = (Signal._meta.db_table, SignalOutcome._meta.db_table, SignalEvent._meta.db_table)
# An outcome moves forward (open -> closed), so it alone of the three may be updated.
NO_UPDATE_TABLES = (Signal._meta.db_table, SignalEvent._meta.db_table)


def _statements(role: str, password: str | None, exists: bool, database: str) -> list[sql.Composable]:
    ident = sql.Identifier(role)
    statements: list[sql.Composable] = []
    if not exists:
        statements.append(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(ident))
    if password is not None:
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
    statements += [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(ident),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
        sql.SQL("REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {}").format(ident),
    ]
    for table in PERMANENT_TABLES:
        statements.append(sql.SQL("REVOKE DELETE, TRUNCATE ON {} FROM {}").format(sql.Identifier(table), ident))
    for table in NO_UPDATE_TABLES:
        statements.append(sql.SQL("REVOKE UPDATE ON {} FROM {}").format(sql.Identifier(table), ident))
    return statements


class Command(BaseCommand):
    help = ("Create (or refresh) a PostgreSQL login role for the application without DELETE/TRUNCATE on "
            "signals, outcomes and amendments (and no UPDATE of signals or amendments). Run it as the "
            "database owner after each migrate; point the application's DATABASE_URL at the role.")

    def add_arguments(self, parser):
        parser.add_argument("role", help="role name: lowercase letters, digits and _ (e.g. signals_app)")
        parser.add_argument("--password", help="set this password (default: a new one is generated for a new "
                            "role and printed once; an existing role keeps its password)")

    def handle(self, *args, role: str, password: str | None = None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("create_app_db_role needs PostgreSQL (DATABASE_URL=postgres://...); "
                               "SQLite has no roles: its triggers alone enforce never-delete.")
        if not _ROLE_NAME.match(role):
            raise CommandError(f"{role!r} is not a usable role name: use 1-63 lowercase letters, digits and _, "
                               "not starting with a digit (e.g. signals_app).")
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            row = cursor.fetchone()
            if row and row[0]:
                raise CommandError(f"Role {role!r} is a superuser: superusers bypass every privilege. "
                                   "Pick another name for the application role.")
            exists = row is not None
            generated = password is None and not exists
            if generated:
                password = secrets.token_urlsafe(24)
            try:
                for statement in _statements(role, password, exists, connection.settings_dict["NAME"]):
                    cursor.execute(statement)
            except DatabaseError as exc:
                raise CommandError(f"PostgreSQL refused: {exc}. Run this command as the database owner "
                                   "(a role allowed to CREATE ROLE and GRANT on these tables).") from exc
        self.stdout.write(self.style.SUCCESS(
            f"Role {role!r} {'updated' if exists else 'created'}: no DELETE/TRUNCATE on {', '.join(PERMANENT_TABLES)}."))
        if generated:
            self.stdout.write(f"Password (shown once): {password}")
