"""`manage.py bootstrap`: demo instruments and an admin account, safe to run twice.

The admin password comes from DJANGO_SUPERUSER_PASSWORD, or is generated and
printed exactly once (when the account is first created); it is never stored in a
file by us.
"""
from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from signals.services import demo_instruments_seed


class Command(BaseCommand):
    help = "Seed demo instruments (BTCUSDT, ETHUSDT, SOLUSDT, USDCOP) and an admin account."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@example.com"))
        parser.add_argument("--no-instruments", action="store_true", help="skip the demo instruments")
        parser.add_argument("--credentials-file", help="write a generated password to this file (mode 0600) "
                            "instead of printing it: bin/run shows it last, once everything is up")

    def handle(self, *args, username, email, no_instruments, credentials_file=None, **options):
        if not no_instruments:
            symbols = [i.symbol for i in demo_instruments_seed()]
            self.stdout.write(f"instruments: {', '.join(symbols)}")
        user_model = get_user_model()
        env_password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = env_password or secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email=email, password=password)
            shown = "(from DJANGO_SUPERUSER_PASSWORD)" if env_password else password
            if credentials_file and not env_password:
                _write_private(credentials_file, f"{username}\n{password}\n")
                shown = "(password shown when everything is up)"
            self.stdout.write(self.style.SUCCESS(f"admin account created: {username} / {shown}"))
            if not env_password and not credentials_file:
                self.stdout.write(self.style.WARNING("This generated password is shown only once: note it now."))
        elif env_password and not user.check_password(env_password):
            user.set_password(env_password)
            user.save(update_fields=["password"])
            self.stdout.write(f"admin account {username}: password reset from DJANGO_SUPERUSER_PASSWORD")
        else:
            self.stdout.write(f"admin account {username} already exists (password unchanged)")


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
