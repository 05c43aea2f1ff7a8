"""The subscriptions and webhooks pages in Debian's Chromium (Playwright) against a
real daphne, and the browser-preference API they use."""
from __future__ import annotations

import time

import pytest
from django.test import Client

from conftest import DaphneProcess
from dashboard.tests.conftest import browser, page  # noqa: F401 - shared Chromium fixtures
from dashboard.tests.live_page import login, post_signal, stop_daphne
from integrations.fakes import FakeRemotes
from integrations.models import BrowserPreference, Channel, Delivery
from integrations.tests.conftest import TELEGRAM_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def receiver():
    fake = FakeRemotes().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def _integrations_server(django_db_setup, django_db_blocker, receiver):
    # Deliveries run inside the web process (eager Celery) so the page can show them
    # without a worker; private targets are allowed so the loopback receiver counts.
    with django_db_blocker.unblock():
        server = DaphneProcess(extra_env={"DJANGO_ALLOW_ASYNC_UNSAFE": "", "CELERY_TASK_ALWAYS_EAGER": "1",
                                          "WEBHOOK_ALLOW_PRIVATE": "1"}).start()
    yield server
    stop_daphne(server)


@pytest.fixture
def server(_integrations_server, transactional_db):
    return _integrations_server


@pytest.mark.browser
def test_it_manages_browser_preferences_and_chat_channels_in_the_page(server, page, staff_user):  # noqa: F811
    login(page, server, "/subscriptions/")

    form = page.locator("#browser-form")
    form.locator('input[name="events"][value="signal.amended"]').uncheck()
    form.locator('input[name="markets"][value="crypto"]').check()
    form.locator('input[name="sources"]').fill("manual, rsi_reversal")
    form.locator('input[name="min_confidence"]').fill("60")
    form.get_by_role("button", name="Save preferences").click()
    page.wait_for_selector("#browser-status:has-text('Saved.')")
    pref = BrowserPreference.objects.get(user=staff_user)
    assert (pref.events, pref.markets, pref.sources, pref.min_confidence) == (
        ["signal.created", "signal.outcome"], ["crypto"], ["manual", "rsi_reversal"], 60)

    channel_form = page.locator("#channel-form")
    channel_form.locator('input[name="bot_token"]').fill("not-a-token")
    channel_form.locator('input[name="chat_id"]').fill("-1001234567890")
    channel_form.get_by_role("button", name="Add channel").click()
    page.wait_for_selector('#channel-form [data-error="bot_token"]:has-text("bot token")')
    assert not Channel.objects.exists()

    channel_form.locator('input[name="bot_token"]').fill(TELEGRAM_TOKEN)
    channel_form.locator('input[name="topic_id"]').fill("4")
    channel_form.locator('input[name="min_confidence"]').fill("75")
    channel_form.get_by_role("button", name="Add channel").click()
    row = page.locator("#channels-table tbody tr").first
    row.wait_for()
    assert "chat -1001234567890 · topic 4" in row.inner_text() and "confidence ≥ 75" in row.inner_text()
    assert TELEGRAM_TOKEN not in page.content()
    channel = Channel.objects.get()
    assert (channel.kind, channel.bot_token, channel.topic_id, channel.min_confidence) == (
        "telegram", TELEGRAM_TOKEN, 4, 75)

    row.get_by_role("button", name="Disable").click()
    page.wait_for_selector("#channels-table tbody tr td.int-state:text-is('Disabled')")
    channel.refresh_from_db()
    assert channel.enabled is False

    # What was saved is what the page shows after a reload.
    page.reload()
    page.wait_for_selector("#channels-table tbody tr")
    page.wait_for_function("document.querySelector('#browser-form input[name=min_confidence]').value === '60'")
    assert not page.locator('#browser-form input[name="events"][value="signal.amended"]').is_checked()
    assert page.locator('#browser-form input[name="markets"][value="crypto"]').is_checked()


@pytest.mark.browser
def test_it_adds_a_webhook_shows_its_secret_once_and_its_deliveries(server, page, staff_user, staff_token,  # noqa: F811
                                                                    receiver, instruments):
    login(page, server, "/webhooks/")
    form = page.locator("#webhook-form")
    form.locator('input[name="url"]').fill(f"{receiver.url}/page-hook")
    form.get_by_role("button", name="Add endpoint").click()
    page.wait_for_selector("#secret-box:not([hidden])")
    assert page.locator("#secret-value").inner_text().startswith("whsec_")

    already = len(receiver.received)
    signal_id = post_signal(server, staff_token)
    receiver.wait_for(already + 1)
    # The receiver answers before the web process writes the attempt row.
    deadline = time.monotonic() + 10
    while not Delivery.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    page.locator("#webhooks-table tbody tr").first.get_by_role("button", name="Deliveries").click()
    delivery = page.locator("#deliveries-table tbody tr").first
    delivery.wait_for()
    assert f"signal.created #{signal_id}" in delivery.inner_text() and "OK 200" in delivery.inner_text()

    delivery.get_by_role("button", name="Redeliver").click()
    page.wait_for_selector("#deliveries-table button:has-text('Queued')")
    again = receiver.wait_for(already + 2)[-1]
    assert again.headers["webhook-id"] == receiver.received[already].headers["webhook-id"]

    # A reload never shows the secret again.
    page.reload()
    page.wait_for_selector("#webhooks-table tbody tr")
    assert page.locator("#secret-box").is_hidden()


def test_the_pages_need_a_login(client):
    for path in ("/subscriptions/", "/webhooks/"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def test_it_reads_and_validates_browser_preferences(owner_client):
    defaults = owner_client.get("/api/subscriptions/browser/").json()
    assert defaults == {"notify": True, "events": ["signal.created", "signal.outcome", "signal.amended"],
                        "markets": [], "sources": [], "min_confidence": 0}
    bad = owner_client.put("/api/subscriptions/browser/", {"markets": ["stocks"], "min_confidence": -1,
                                                           "events": []}, format="json")
    assert bad.status_code == 400 and {"markets", "min_confidence", "events"} <= set(bad.json())
    saved = owner_client.put("/api/subscriptions/browser/", {"notify": False, "markets": ["forex"]}, format="json")
    assert saved.status_code == 200 and saved.json()["notify"] is False
    assert owner_client.get("/api/subscriptions/browser/").json()["markets"] == ["forex"]
    assert Client().get("/api/subscriptions/browser/").status_code == 401
