"""Fixtures for the integrations tests: loopback fakes of the remotes (webhook
receiver, Telegram Bot API, Discord) and Celery run in-process (eager), so the real
delivery code makes real HTTP requests over loopback."""
from __future__ import annotations

import pytest

from integrations import receivers
from integrations.fakes import FakeRemotes

TELEGRAM_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"


@pytest.fixture
def remotes(settings):
    fake = FakeRemotes(telegram_tokens={TELEGRAM_TOKEN}).start()
    settings.TELEGRAM_API_URL = fake.url
    settings.DISCORD_API_URL = f"{fake.url}/api"
    settings.SITE_URL = "https://signals.example"
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.DELIVERY_TIMEOUT_SECONDS = 5.0
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _hooks_off():
    """Committed signals enqueue nothing unless a test asks for `eager_celery`: most
    tests drive the fan-out and attempts themselves, step by step."""
    from signals.dispatch import amendment_published, outcome_decided, signal_published

    for hook, uid in ((signal_published, "signal_published"), (outcome_decided, "outcome_decided"),
                      (amendment_published, "amendment_published")):
        hook.disconnect(dispatch_uid=f"integrations.{uid}")
    yield
    receivers.connect()


@pytest.fixture
def eager_celery():
    """The dispatch hooks on, and tasks run in the caller as the worker would run
    them (countdowns ignored)."""
    from signals_project.celery import app

    receivers.connect()
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="owner-pass-123")


@pytest.fixture
def owner_client(owner):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    return client
