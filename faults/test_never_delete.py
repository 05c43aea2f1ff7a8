"""Never-delete under attack: every way to remove or rewrite a signal, its outcome
or its amendments (raw SQL, querysets, instances, foreign-key cascades from an
instrument or a user, the admin's delete URLs, an import colliding with existing
ids) is refused, and the number of signals never decreases. The restricted
application role (`manage.py create_app_db_role`) has no DELETE or TRUNCATE on the
permanent tables, and the application works when it connects as that role."""
from __future__ import annotations

import json
import secrets
import urllib.parse

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from conftest import DaphneProcess, child_database_url
from faults.conftest import SIGNAL_BODY, http
from signals.models import ImmutableSignalError, Instrument, Signal, SignalEvent, SignalOutcome
from signals.services import signal_create, signal_event_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

TABLES = {"signal": Signal._meta.db_table, "outcome": SignalOutcome._meta.db_table,
          "event": SignalEvent._meta.db_table}


@pytest.fixture
def published(staff_api_token):
    staff = get_user_model().objects.get(username="faults-staff")
    ids = [signal_create(**SIGNAL_BODY, created_by=staff).signal.id for _ in range(3)]
    signal_create(**{**SIGNAL_BODY, "symbol": "ETHUSDT"}, created_by=staff)
    signal_event_create(signal_id=ids[0], event_type="move_stop", price="95", created_by=staff)
    return staff, ids


def _counts() -> tuple[int, int, int]:
    return Signal.objects.count(), SignalOutcome.objects.count(), SignalEvent.objects.count()


RAW_ATTACKS = [
    "DELETE FROM {signal}",
    "DELETE FROM {signal} WHERE id = (SELECT max(id) FROM {signal})",
    "UPDATE {signal} SET entry_price = 1",
    "UPDATE {signal} SET note = 'rewritten'",
    "TRUNCATE {signal}",
    "TRUNCATE {signal} CASCADE",
    "TRUNCATE signals_instrument CASCADE",
    "DELETE FROM {outcome}",
    "TRUNCATE {outcome}",
    "DELETE FROM {event}",
    "UPDATE {event} SET reason = 'rewritten'",
    "TRUNCATE {event}",
    "DELETE FROM signals_instrument",
]


def test_it_refuses_every_attack_and_the_count_never_decreases(published, client):
    staff, ids = published
    before = _counts()

    def _refused(attack) -> None:
        with pytest.raises((DatabaseError, ImmutableSignalError, ProtectedError)):
            with transaction.atomic():
                attack()
        assert _counts() == before, attack

    for sql in RAW_ATTACKS:
        def _raw(sql=sql):
            with connection.cursor() as cursor:
                cursor.execute(sql.format(**TABLES))
        _refused(_raw)
    _refused(lambda: Signal.objects.all().delete())
    _refused(lambda: Signal.objects.filter(id=ids[0]).update(note="x"))
    _refused(lambda: Signal.objects.get(id=ids[0]).delete())
    _refused(lambda: SignalEvent.objects.all().delete())
    _refused(lambda: SignalOutcome.objects.all().delete())
    _refused(lambda: Instrument.objects.get(symbol="BTCUSDT").delete())
    _refused(lambda: Instrument.objects.all().delete())
    _refused(lambda: staff.delete())  # the publisher of signals and amendments

    # The admin's delete doors, as a superuser.
    admin = get_user_model().objects.create_superuser("root", password="root-pass-123456")
    client.force_login(admin)
    for model in ("signal", "signaloutcome", "signalevent"):
        pk = ids[0] if model != "signalevent" else SignalEvent.objects.first().pk
        url = f"/admin/signals/{model}/{pk}/delete/"
        assert client.get(url).status_code in (403, 404), url
        assert client.post(url, {"post": "yes"}).status_code in (403, 404), url
        client.post(f"/admin/signals/{model}/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
        assert _counts() == before, model
    # The API's DELETE.
    from rest_framework.authtoken.models import Token

    token = Token.objects.get(user=staff).key
    assert client.delete(f"/api/signals/{ids[0]}/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 405
    assert _counts() == before


def test_it_imports_nothing_over_existing_signals_with_colliding_ids(published, tmp_path):
    _, ids = published
    before = _counts()
    export = tmp_path / "signals.json"
    call_command("export_signals", "--format", "json", "-o", str(export))
    records = json.loads(export.read_text())
    rows = records if isinstance(records, list) else records.get("signals", records)
    for row in rows:  # same ids, different content: an attempt to overwrite
        row["note"] = "overwritten"
        row["external_id"] = None
    export.write_text(json.dumps(records))
    try:
        call_command("import_signals", str(export), "--id-prefix", "attack:")
    except CommandError:
        pass
    after = _counts()
    assert after[0] >= before[0]
    for signal_id in ids:
        assert Signal.objects.get(id=signal_id).note == ""


@pytest.fixture
def app_role(published):
    role = f"signals_app_test_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    call_command("create_app_db_role", role, "--password", password)
    yield role, password
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


def _role_url(role: str, password: str) -> str:
    url = urllib.parse.urlsplit(child_database_url())
    netloc = f"{role}:{urllib.parse.quote(password)}@{url.hostname}:{url.port or 5432}"
    return urllib.parse.urlunsplit(("postgresql", netloc, url.path, "", ""))


def test_it_gives_the_app_role_no_delete_or_truncate_on_the_permanent_tables(app_role):
    role, password = app_role
    before = _counts()
    with psycopg.connect(_role_url(role, password), autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLES['signal']}").fetchone()[0] == before[0]
        for sql in ("DELETE FROM {signal}", "TRUNCATE {signal}", "UPDATE {signal} SET note = 'x'",
                    "DELETE FROM {outcome}", "TRUNCATE {outcome}", "DELETE FROM {event}", "TRUNCATE {event}",
                    "UPDATE {event} SET reason = 'x'", "ALTER TABLE {signal} DISABLE TRIGGER ALL",
                    "DROP TABLE {signal} CASCADE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.format(**TABLES))
    assert _counts() == before
    # Idempotent: a second run after a migrate only refreshes the grants.
    call_command("create_app_db_role", role)


@pytest.mark.slow
def test_it_runs_the_application_as_the_restricted_role(app_role):
    from rest_framework.authtoken.models import Token

    role, password = app_role
    token = Token.objects.get(user__username="faults-staff").key
    server = DaphneProcess(extra_env={"DATABASE_URL": _role_url(role, password).replace("postgresql://", "postgres://")})
    server.start()
    try:
        status, _, body = http("POST", f"{server.http_url}/api/signals/", token=token, body=SIGNAL_BODY)
        assert status == 201, body
        status, _, body = http("GET", f"{server.http_url}/api/signals/", token=token)
        assert status == 200 and json.loads(body)["results"][0]["id"] == max(Signal.objects.values_list("id", flat=True))
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE x;--", "1abc", "x" * 64, "postgres"])
def test_it_refuses_an_unusable_role_name_with_a_clear_error(transactional_db, name):
    with pytest.raises(CommandError) as exc:
        call_command("create_app_db_role", name)
    assert "role" in str(exc.value).lower()
