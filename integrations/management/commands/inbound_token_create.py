"""manage.py inbound_token_create SOURCE [--user U]: a token for inbound alerts."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from integrations.services import ChannelValidationError, inbound_token_create


class Command(BaseCommand):
    help = ("Create a token for POST /api/inbound/<token>/ that publishes signals as SOURCE "
            "(on behalf of --user). The token is printed once; only its hash is stored.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="the signals' source name, e.g. tradingview")
        parser.add_argument("--user", help="username of the publisher (needs staff or signals.add_signal)")

    def handle(self, *args, source: str, user: str | None, **options):
        publisher = None
        if user:
            publisher = get_user_model().objects.filter(username=user).first()
            if publisher is None:
                raise CommandError(f"No user named {user!r}: create it first or pass another --user.")
        try:
            token, raw = inbound_token_create(source=source, publisher=publisher)
        except ChannelValidationError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"Inbound token #{token.pk} for source {token.source!r} "
                          f"(shown once, store it now): POST /api/inbound/<token>/")
        self.stdout.write(raw)
