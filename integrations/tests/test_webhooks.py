"""Webhooks per Standard Webhooks against a real HTTP receiver on loopback: signing
(checked with the library's own verifier), retries with backoff and one webhook-id,
pause after a day of failures, redelivery, SSRF refusal, and the API's rules."""
from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from conftest import make_signal
from integrations.delivery import message_attempt
from integrations.fanout import event_fanout
from integrations.models import Channel, Delivery, Message
from integrations.outbound import OutboundClient
from integrations.services import channel_create

pytestmark = pytest.mark.django_db(transaction=True)


def _webhook(owner, remotes, **filters):
    return channel_create(owner=owner, kind="webhook", url=f"{remotes.url}/hooks/a", **filters)


def test_it_posts_new_signals_signed_so_the_standard_webhooks_verifier_accepts_them(
        owner_client, remotes, eager_celery, instruments):
    created = owner_client.post("/api/webhooks/", {"url": f"{remotes.url}/hooks/in", "markets": ["crypto"]},
                                format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")

    signal = make_signal(symbol="ETHUSDT", entry_price="3000", stop_loss="2900", take_profit="3300")

    [received] = remotes.wait_for(1)
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "signal.created"
    assert payload["data"]["signal"]["id"] == signal.id
    assert payload["data"]["signal"]["entry_price"] == "3000"
    assert received.headers["webhook-id"].startswith("msg_")
    # A tampered body or another secret fails verification.
    with pytest.raises(Exception):
        Webhook(secret).verify(received.body.replace(b"3000", b"3001"), received.headers)
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 43 + "=").verify(received.body, received.headers)
    # The secret is never shown again.
    listed = owner_client.get("/api/webhooks/").json()
    assert "secret" not in listed[0] and "secret" not in owner_client.get(f"/api/webhooks/{listed[0]['id']}/").json()


def test_it_retries_with_exponential_backoff_and_the_same_webhook_id(owner, remotes, instruments, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 10
    channel = _webhook(owner, remotes).channel
    signal = make_signal()
    [message_id] = event_fanout(event_type="signal.created", signal_id=signal.id)
    remotes.script("webhook", [500, 503, 502])
    client = OutboundClient()

    now = timezone.now()
    waits = []
    for _ in range(3):
        result = message_attempt(message_id=message_id, client=client, now=now)
        assert result is not None and not result.success
        waits.append(result.retry_in)
        # Not due yet: a second worker (or the sweep) cannot send it early.
        assert message_attempt(message_id=message_id, client=client, now=now) is None
        now += dt.timedelta(seconds=result.retry_in)
    final = message_attempt(message_id=message_id, client=client, now=now)
    assert final.success and final.retry_in is None

    for attempt, wait in enumerate(waits, start=1):
        nominal = 10 * 2 ** (attempt - 1)
        assert 0.75 * nominal <= wait <= 1.25 * nominal, (attempt, wait)
    ids = {r.headers["webhook-id"] for r in remotes.failed + remotes.received}
    assert ids == {message_id} and len(remotes.failed) == 3 and len(remotes.received) == 1
    attempts = list(Delivery.objects.filter(channel=channel).order_by("attempt"))
    assert [(d.attempt, d.success, d.status_code) for d in attempts] == [
        (1, False, 500), (2, False, 503), (3, False, 502), (4, True, 200)]
    assert Message.objects.get(pk=message_id).status == "delivered"


def test_it_gives_up_after_the_last_attempt(owner, remotes, instruments, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    _webhook(owner, remotes)
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    remotes.script("webhook", [500, 500])
    now = timezone.now()
    first = message_attempt(message_id=message_id, client=OutboundClient(), now=now)
    second = message_attempt(message_id=message_id, client=OutboundClient(),
                             now=now + dt.timedelta(seconds=first.retry_in))
    assert second.retry_in is None
    assert Message.objects.get(pk=message_id).status == "failed"


def test_it_pauses_an_endpoint_failing_for_a_day_and_shows_the_owner_why(owner, owner_client, remotes,
                                                                        instruments):
    channel = _webhook(owner, remotes).channel
    remotes.script("webhook", [(500, {"error": "receiver is down for maintenance"}, {})] * 3)
    client = OutboundClient()
    first = event_fanout(event_type="signal.created", signal_id=make_signal().id)[0]
    start = timezone.now()
    message_attempt(message_id=first, client=client, now=start)
    channel.refresh_from_db()
    assert channel.failing_since == start and channel.paused_reason == ""

    second = event_fanout(event_type="signal.created", signal_id=make_signal().id)[0]
    message_attempt(message_id=second, client=client, now=start + dt.timedelta(hours=25))
    body = owner_client.get(f"/api/webhooks/{channel.pk}/").json()
    assert "failed for 25 h" in body["paused_reason"]
    assert "receiver is down for maintenance" in body["paused_reason"]
    # Paused: nothing more is owed to it, and new signals skip it.
    assert Message.objects.get(pk=first).status == "dropped"
    assert event_fanout(event_type="signal.created", signal_id=make_signal().id) == []

    # The owner resumes it by enabling it again.
    resumed = owner_client.patch(f"/api/webhooks/{channel.pk}/", {"enabled": True}, format="json").json()
    assert resumed["paused_reason"] == "" and resumed["enabled"] is True
    assert len(event_fanout(event_type="signal.created", signal_id=make_signal().id)) == 1


def test_it_clears_the_failing_clock_on_success(owner, remotes, instruments):
    channel = _webhook(owner, remotes).channel
    remotes.script("webhook", [500])
    client = OutboundClient()
    now = timezone.now()
    message_attempt(message_id=event_fanout(event_type="signal.created", signal_id=make_signal().id)[0],
                    client=client, now=now)
    message_attempt(message_id=event_fanout(event_type="signal.created", signal_id=make_signal().id)[0],
                    client=client, now=now)
    channel.refresh_from_db()
    assert channel.failing_since is None


def test_it_redelivers_a_past_event_with_its_webhook_id(owner_client, remotes, eager_celery, instruments):
    created = owner_client.post("/api/webhooks/", {"url": f"{remotes.url}/hooks/r"}, format="json").json()
    make_signal()
    [first] = remotes.wait_for(1)
    [delivery] = owner_client.get(f"/api/webhooks/{created['id']}/deliveries/").json()
    assert delivery["success"] and delivery["status_code"] == 200 and delivery["webhook_id"] == \
        first.headers["webhook-id"]

    answer = owner_client.post(f"/api/webhooks/{created['id']}/redeliver/", {"event_id": delivery["event_id"]},
                               format="json")
    assert answer.status_code == 202, answer.content
    _, again = remotes.wait_for(2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"] and again.body == first.body
    Webhook(created["secret"]).verify(again.body, again.headers)
    assert len(owner_client.get(f"/api/webhooks/{created['id']}/deliveries/").json()) == 2

    bad = owner_client.post(f"/api/webhooks/{created['id']}/redeliver/", {"event_id": 999999}, format="json")
    assert bad.status_code == 400 and "event_id" in bad.json()
    owner_client.patch(f"/api/webhooks/{created['id']}/", {"enabled": False}, format="json")
    off = owner_client.post(f"/api/webhooks/{created['id']}/redeliver/", {"event_id": delivery["event_id"]},
                            format="json")
    assert off.status_code == 400 and "enable it first" in off.json()["event_id"][0]


@pytest.mark.parametrize("url, reason", [
    ("http://93.184.215.14/hook", "only https"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost/hook", "localhost resolves to"),
    ("https://10.1.2.3/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::1]/hook", "loopback"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://user:pw@example.com/hook", "credentials"),
])
def test_it_refuses_private_and_non_https_targets(owner_client, settings, url, reason):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    answer = owner_client.post("/api/webhooks/", {"url": url}, format="json")
    assert answer.status_code == 400
    assert reason in " ".join(answer.json()["url"])
    assert not Channel.objects.exists()


def test_it_checks_the_address_again_at_delivery_time(owner, remotes, instruments, settings):
    # Saved while private targets were allowed; the host resolves to loopback.
    channel = channel_create(owner=owner, kind="webhook",
                             url=f"https://localhost:{remotes.url.rsplit(':', 1)[1]}/hooks/x").channel
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    result = message_attempt(message_id=message_id, client=OutboundClient(), now=timezone.now())
    assert not result.success and result.retry_in is not None
    assert "refused" in result.error and "loopback" in result.error
    assert remotes.received == [] and remotes.failed == []
    assert Delivery.objects.get(channel=channel).status_code is None


def test_it_times_out_a_receiver_that_never_answers(owner, instruments, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (backlog), never reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        channel_create(owner=owner, kind="webhook", url=url)
        [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
        result = message_attempt(message_id=message_id, client=OutboundClient(timeout=0.5), now=timezone.now())
    assert not result.success and result.error == "timed out"


def test_it_shows_users_only_their_own_endpoints(owner_client, reader_client, remotes, django_user_model):
    mine = owner_client.post("/api/webhooks/", {"url": f"{remotes.url}/a"}, format="json").json()
    theirs = reader_client.post("/api/webhooks/", {"url": f"{remotes.url}/b"}, format="json").json()
    assert [w["id"] for w in owner_client.get("/api/webhooks/").json()] == [mine["id"]]
    for method in ("get", "patch", "delete"):
        assert getattr(owner_client, method)(f"/api/webhooks/{theirs['id']}/").status_code == 404
    assert owner_client.get(f"/api/webhooks/{theirs['id']}/deliveries/").status_code == 404
    assert owner_client.put(f"/api/webhooks/{mine['id']}/", {"url": f"{remotes.url}/c"},
                            format="json").status_code == 405
    assert owner_client.delete(f"/api/webhooks/{mine['id']}/").status_code == 204
    assert Channel.objects.filter(pk=mine["id"]).count() == 0


def test_it_names_every_bad_field(owner_client, remotes):
    answer = owner_client.post("/api/webhooks/", {"url": "not a url", "events": ["signal.deleted"],
                                                  "markets": ["stocks"], "min_confidence": 101}, format="json")
    assert answer.status_code == 400
    assert {"url", "events", "markets", "min_confidence"} <= set(answer.json())


def test_it_delivers_only_the_event_kinds_an_endpoint_chose(owner, remotes, instruments):
    from signals.services import signal_outcome_close

    outcomes_only = _webhook(owner, remotes, events=["signal.outcome"]).channel
    everything = _webhook(owner, remotes).channel
    signal = make_signal()
    created = event_fanout(event_type="signal.created", signal_id=signal.id)
    assert [Message.objects.get(pk=m).channel_id for m in created] == [everything.pk]
    signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price="120")
    decided = event_fanout(event_type="signal.outcome", signal_id=signal.id)
    assert sorted(Message.objects.get(pk=m).channel_id for m in decided) == sorted([outcomes_only.pk, everything.pk])
    # A fan-out that runs twice owes nothing twice (the same messages, still unsent).
    assert sorted(event_fanout(event_type="signal.outcome", signal_id=signal.id)) == sorted(decided)
    assert Message.objects.count() == 3
