"""What operators rely on: the admin's channel view (last 24 h, failures with the
remote's words, redelivery, resume), staff access through the API, the delivery
counter behind /metrics, and the sweep that recovers lost tasks and fan-outs."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from conftest import make_signal
from integrations.delivery import message_attempt
from integrations.fanout import event_fanout
from integrations.models import Channel, Delivery, Event, Message
from integrations.outbound import OutboundClient
from integrations.services import channel_create
from integrations.tasks import deliveries_sweep
from pipeline.shared_counters import shared_counter_totals

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failed_delivery(owner, remotes, instruments):
    channel = channel_create(owner=owner, kind="webhook", url=f"{remotes.url}/ops").channel
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    remotes.script("webhook", [(502, {"message": "upstream gateway exploded"}, {})])
    message_attempt(message_id=message_id, client=OutboundClient(), now=timezone.now())
    return channel, Delivery.objects.get(channel=channel)


def test_the_admin_shows_a_channels_last_day_with_the_remotes_message(admin_client, failed_delivery):
    channel, delivery = failed_delivery
    client = admin_client
    listing = client.get("/admin/integrations/channel/")
    assert listing.status_code == 200 and ">0 / 1<" in listing.content.decode()
    page = client.get(f"/admin/integrations/channel/{channel.pk}/change/").content.decode()
    assert "HTTP 502: upstream gateway exploded" in page and channel.secret not in page
    failures = client.get(f"/admin/integrations/delivery/?channel__id__exact={channel.pk}&success__exact=0")
    assert "upstream gateway exploded" in failures.content.decode()


def test_the_admin_redelivers_and_resumes(admin_client, failed_delivery, remotes, request):
    channel, delivery = failed_delivery
    request.getfixturevalue("eager_celery")
    client = admin_client
    answer = client.post("/admin/integrations/delivery/", {"action": "redeliver", "_selected_action": [delivery.pk]},
                         follow=True)
    assert "1 event(s) queued for redelivery." in answer.content.decode()
    [received] = remotes.wait_for(1)
    assert received.headers["webhook-id"] == delivery.message_id

    Channel.objects.filter(pk=channel.pk).update(paused_reason="failing for a day", failing_since=timezone.now())
    client.post("/admin/integrations/channel/", {"action": "resume", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert channel.paused_reason == "" and channel.failing_since is None


def test_staff_open_any_channel_and_list_everyones_on_request(owner_client, staff_client, failed_delivery, remotes):
    channel, _ = failed_delivery
    staff_client.post("/api/webhooks/", {"url": f"{remotes.url}/mine"}, format="json")
    assert len(staff_client.get("/api/webhooks/").json()) == 1
    assert len(staff_client.get("/api/webhooks/?all=1").json()) == 2
    [failure] = staff_client.get(f"/api/webhooks/{channel.pk}/deliveries/?failed=1").json()
    assert failure["error"] == "HTTP 502: upstream gateway exploded" and failure["status_code"] == 502
    assert staff_client.get(f"/api/webhooks/{channel.pk}/deliveries/?hours=abc").status_code == 400
    # A user asking for everyone's still sees only their own.
    assert len(owner_client.get("/api/webhooks/?all=1").json()) == 1


def test_it_counts_deliveries_by_kind_and_result_for_metrics(owner, remotes, instruments):
    def count(result):
        return shared_counter_totals("webhook_deliveries_total").get((("kind", "webhook"), ("result", result)), 0)

    before_ok, before_failed = count("success"), count("failure")
    channel_create(owner=owner, kind="webhook", url=f"{remotes.url}/m")
    ids = [event_fanout(event_type="signal.created", signal_id=make_signal().id)[0] for _ in range(3)]
    remotes.script("webhook", [500])
    for message_id in ids:
        message_attempt(message_id=message_id, client=OutboundClient(), now=timezone.now())
    assert (count("success") - before_ok, count("failure") - before_failed) == (2, 1)


def test_the_sweep_recovers_lost_attempts_and_fan_outs(owner, remotes, instruments, request):
    channel_create(owner=owner, kind="webhook", url=f"{remotes.url}/sweep")
    # A delivery task that was lost: the message is pending and long overdue.
    [lost] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    Message.objects.filter(pk=lost).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=5))
    # A signal whose fan-out was never enqueued (its on-commit hook did not run here).
    from signals.models import Signal
    from signals.services import signal_create

    missed = signal_create(symbol="ETHUSDT", direction="long", entry_price="100", stop_loss="90",
                           take_profit="120", confidence=70).signal
    assert not Event.objects.filter(signal_id=missed.id).exists()
    # Backdate the signal's creation past the sweep's grace period (test database only).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE signals_signal SET created_at = %s WHERE id = %s",
                       [timezone.now() - dt.timedelta(minutes=5), missed.id])
        cursor.execute("SET session_replication_role = origin")
    assert Signal.objects.get(pk=missed.id).created_at < timezone.now() - dt.timedelta(minutes=4)

    request.getfixturevalue("eager_celery")
    result = deliveries_sweep()
    assert result == {"overdue": 1, "missed": 1}
    received = remotes.wait_for(2)
    signal_ids = sorted(r.json()["data"]["signal"]["id"] for r in received)
    assert signal_ids == sorted([Message.objects.get(pk=lost).event.signal_id, missed.id])
    assert deliveries_sweep() == {"overdue": 0, "missed": 0}


def test_an_operator_adds_a_community_channel_in_the_admin_under_the_api_rules(admin_client, owner, remotes):
    form = {"owner": owner.pk, "kind": "telegram", "name": "community", "url": "", "bot_token": "bad",
            "chat_id": "@community_signals", "events": '["signal.created"]', "markets": "[]", "sources": "[]",
            "min_confidence": 0, "enabled": "on", "paused_reason": ""}
    refused = admin_client.post("/admin/integrations/channel/add/", form)
    assert refused.status_code == 200 and "A Telegram bot token looks like" in refused.content.decode()
    assert not Channel.objects.exists()
    from integrations.tests.conftest import TELEGRAM_TOKEN

    admin_client.post("/admin/integrations/channel/add/", {**form, "bot_token": TELEGRAM_TOKEN})
    channel = Channel.objects.get()
    assert (channel.bot_token, channel.chat_id, channel.events) == (TELEGRAM_TOKEN, "@community_signals",
                                                                    ["signal.created"])
    page = admin_client.get(f"/admin/integrations/channel/{channel.pk}/change/").content.decode()
    assert TELEGRAM_TOKEN not in page
    # Saving without retyping the token keeps it.
    admin_client.post(f"/admin/integrations/channel/{channel.pk}/change/", {**form, "bot_token": "", "name": "renamed"})
    channel.refresh_from_db()
    assert (channel.name, channel.bot_token) == ("renamed", TELEGRAM_TOKEN)
