"""Telegram and Discord channels on the same engine, against loopback fakes that
answer like the real APIs: the message for each event kind, 429 retry-after, bot
tokens never stored in the log, and routing (a signal reaches exactly the channels
whose filters match)."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from conftest import make_signal
from integrations.delivery import message_attempt
from integrations.fakes import discord_429, telegram_429
from integrations.fanout import event_fanout
from integrations.models import Channel, Delivery, Message
from integrations.outbound import OutboundClient
from integrations.services import channel_create
from integrations.tests.conftest import TELEGRAM_TOKEN
from signals.services import signal_event_create, signal_outcome_close

pytestmark = pytest.mark.django_db(transaction=True)


def _telegram(owner, **extra):
    return channel_create(owner=owner, kind="telegram", bot_token=TELEGRAM_TOKEN, chat_id="-1001234567890",
                          **extra).channel


def _discord(owner, remotes, **extra):
    return channel_create(owner=owner, kind="discord", url=f"{remotes.url}/api/webhooks/42/tok_en-1",
                          **extra).channel


def _deliver_all(ids, now=None):
    client = OutboundClient()
    return [message_attempt(message_id=m, client=client, now=now or timezone.now()) for m in ids]


def test_it_sends_a_readable_telegram_message_for_each_event_kind(owner, remotes, instruments, staff_user):
    _telegram(owner, topic_id=7)
    signal = make_signal(symbol="ETHUSDT", entry_price="3000", stop_loss="2900", take_profit="3300",
                         confidence=81, source="ema_cross", note="Cross <up>", created_by=staff_user,
                         targets=[{"price": "3150", "portion": "0.5"}, {"price": "3300", "portion": "0.5"}])
    assert all(r.success for r in _deliver_all(event_fanout(event_type="signal.created", signal_id=signal.id)))
    amendment = signal_event_create(signal_id=signal.id, event_type="move_stop", price="2950",
                                    reason="lock in", created_by=staff_user)
    _deliver_all(event_fanout(event_type="signal.amended", signal_id=signal.id, amendment_id=amendment.id))
    signal_outcome_close(signal_id=signal.id, status="sl_hit", exit_price="2950")
    _deliver_all(event_fanout(event_type="signal.outcome", signal_id=signal.id))

    created, amended, decided = [r.json() for r in remotes.wait_for(3)]
    assert remotes.received[0].path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    for message in (created, amended, decided):
        assert message["chat_id"] == "-1001234567890" and message["message_thread_id"] == 7
        assert message["parse_mode"] == "HTML"
        assert f'<a href="https://signals.example/api/signals/{signal.id}/">' in message["text"]
    text = created["text"]
    assert f"New signal #{signal.id}: LONG ETHUSDT" in text
    assert "Entry 3000 · Stop 2900" in text and "Targets 3150 (50%), 3300 (50%)" in text
    assert "Confidence 81" in text and "source ema_cross" in text
    assert "Cross &lt;up&gt;" in text  # user text is escaped for Telegram's HTML mode
    assert f"Amendment #{signal.id}" in amended["text"] and "Stop moved to 2950" in amended["text"]
    assert "Reason: lock in" in amended["text"]
    assert f"Outcome #{signal.id}" in decided["text"] and "Stop-loss hit at 2950" in decided["text"]


def test_it_sends_a_discord_embed_for_each_event_kind(owner, remotes, instruments, staff_user):
    _discord(owner, remotes)
    signal = make_signal(direction="short", entry_price="100", stop_loss="110", take_profit="80",
                         created_by=staff_user)
    _deliver_all(event_fanout(event_type="signal.created", signal_id=signal.id))
    amendment = signal_event_create(signal_id=signal.id, event_type="close", reason="news", created_by=staff_user)
    _deliver_all(event_fanout(event_type="signal.amended", signal_id=signal.id, amendment_id=amendment.id))
    signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price="80")
    _deliver_all(event_fanout(event_type="signal.outcome", signal_id=signal.id))

    received = remotes.wait_for(3)
    assert all(r.path == "/api/webhooks/42/tok_en-1?wait=true" for r in received)
    created, amended, decided = [r.json() for r in received]
    assert created["content"] == f"New signal #{signal.id}: SHORT BTCUSDT"
    [embed] = created["embeds"]
    assert embed["url"] == f"https://signals.example/api/signals/{signal.id}/"
    assert embed["color"] == 0xF85149 and "Entry 100 · Stop 110" in embed["description"]
    assert created["allowed_mentions"] == {"parse": []}
    assert "Closed" in amended["embeds"][0]["description"] and "Reason: news" in amended["embeds"][0]["description"]
    assert "Take-profit hit at 80" in decided["embeds"][0]["description"]


def test_it_waits_as_long_as_telegram_says_on_429(owner, remotes, instruments):
    channel = _telegram(owner)
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    remotes.script("telegram", [telegram_429(3)])
    now = timezone.now()
    limited = message_attempt(message_id=message_id, client=OutboundClient(), now=now)
    assert not limited.success and limited.status_code == 429
    assert 3 <= limited.retry_in <= 3.5
    assert "Too Many Requests: retry after 3" in limited.error
    # Not before the remote's time is up.
    assert message_attempt(message_id=message_id, client=OutboundClient(),
                           now=now + dt.timedelta(seconds=2.9)) is None
    done = message_attempt(message_id=message_id, client=OutboundClient(),
                           now=now + dt.timedelta(seconds=limited.retry_in))
    assert done.success and len(remotes.received) == 1
    assert [d.status_code for d in Delivery.objects.filter(channel=channel).order_by("attempt")] == [429, 200]


def test_it_waits_as_long_as_discord_says_on_429(owner, remotes, instruments):
    _discord(owner, remotes)
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    remotes.script("discord", [discord_429(1.5)])
    limited = message_attempt(message_id=message_id, client=OutboundClient(), now=timezone.now())
    assert limited.status_code == 429 and 1.5 <= limited.retry_in <= 1.8
    assert "You are being rate limited." in limited.error


def test_it_never_stores_or_logs_a_bot_token(owner, remotes, instruments, caplog):
    channel = channel_create(owner=owner, kind="telegram", bot_token="987654321:WrongTokenWrongTokenWrongToken",
                             chat_id="@signals_channel").channel
    [message_id] = event_fanout(event_type="signal.created", signal_id=make_signal().id)
    with caplog.at_level(logging.DEBUG):
        result = message_attempt(message_id=message_id, client=OutboundClient(), now=timezone.now())
    assert result.status_code == 401 and result.error == "HTTP 401: Unauthorized"
    delivery = Delivery.objects.get(channel=channel)
    stored = delivery.error + delivery.response_excerpt
    assert "WrongToken" not in stored and "WrongToken" not in caplog.text


def test_it_routes_a_signal_to_exactly_the_channels_whose_filters_match(owner, remotes, instruments,
                                                                         django_user_model):
    other = django_user_model.objects.create_user("other")
    matching = {
        _telegram(owner).pk,  # defaults: everything
        _telegram(owner, markets=["crypto"], sources=["rsi_reversal"], min_confidence=80).pk,
        _discord(other, remotes, min_confidence=85).pk,
    }
    _telegram(owner, markets=["forex"])  # wrong market
    _telegram(owner, sources=["manual"])  # wrong source
    _discord(owner, remotes, min_confidence=86)  # confidence too low
    _telegram(owner, events=["signal.outcome"])  # not interested in new signals
    _telegram(owner, enabled=False)
    paused = _telegram(owner)
    Channel.objects.filter(pk=paused.pk).update(paused_reason="failing")

    signal = make_signal(source="rsi_reversal", confidence=85)
    ids = event_fanout(event_type="signal.created", signal_id=signal.id)
    assert {Message.objects.get(pk=m).channel_id for m in ids} == matching
    assert all(r.success for r in _deliver_all(ids))
    assert len(remotes.wait_for(3)) == 3


def test_it_fans_out_through_the_dispatch_hooks_and_celery(owner, remotes, eager_celery, instruments):
    _telegram(owner)
    signal = make_signal()
    remotes.wait_for(1)
    signal_outcome_close(signal_id=signal.id, status="tp_hit", exit_price="120")
    texts = [r.json()["text"] for r in remotes.wait_for(2)]
    assert "New signal" in texts[0] and "Take-profit hit at 120" in texts[1]


def test_it_keeps_bot_tokens_write_only_and_checks_each_kind(owner_client, remotes):
    created = owner_client.post("/api/channels/", {"kind": "telegram", "bot_token": TELEGRAM_TOKEN,
                                                   "chat_id": "-100123", "topic_id": 5}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "bot_token" not in body and body["has_bot_token"] is True and "secret" not in body
    assert TELEGRAM_TOKEN not in owner_client.get("/api/channels/").content.decode()

    bad = owner_client.post("/api/channels/", {"kind": "telegram", "bot_token": "nope", "chat_id": "x y"},
                            format="json")
    assert bad.status_code == 400 and {"bot_token", "chat_id"} <= set(bad.json())
    assert owner_client.post("/api/channels/", {"chat_id": "1"}, format="json").json()["kind"]
    foreign = owner_client.post("/api/channels/", {"kind": "discord", "url": "https://evil.example/api/webhooks/1/x"},
                                format="json")
    assert foreign.status_code == 400 and "url" in foreign.json()
    ok = owner_client.post("/api/channels/", {"kind": "discord", "url": f"{remotes.url}/api/webhooks/1/abc"},
                           format="json")
    assert ok.status_code == 201
    change = owner_client.patch(f"/api/channels/{ok.json()['id']}/", {"kind": "telegram"}, format="json")
    assert change.status_code == 400
    # Chat channels are not webhooks, and the reverse.
    assert owner_client.get(f"/api/webhooks/{ok.json()['id']}/").status_code == 404


def test_it_documents_both_families_and_answers_odd_input_with_4xx(owner_client, staff_client):
    schema = staff_client.get("/api/schema/?format=json").json()
    for path in ("/api/webhooks/", "/api/webhooks/{id}/redeliver/", "/api/webhooks/{id}/deliveries/",
                 "/api/channels/", "/api/channels/{id}/", "/api/subscriptions/browser/"):
        assert path in schema["paths"], path
    assert "secret" in schema["components"]["schemas"]["WebhookCreated"]["properties"]
    assert owner_client.get("/api/webhooks/abc/").status_code == 404
    huge = owner_client.post("/api/channels/", {"kind": "telegram", "bot_token": TELEGRAM_TOKEN, "chat_id": "1",
                                                "topic_id": 2**40}, format="json")
    assert huge.status_code == 400 and "topic_id" in huge.json()
    mine = owner_client.post("/api/channels/", {"kind": "telegram", "bot_token": TELEGRAM_TOKEN, "chat_id": "1"},
                             format="json").json()
    redeliver = owner_client.post(f"/api/channels/{mine['id']}/redeliver/", {"event_id": 2**70}, format="json")
    assert redeliver.status_code == 400


def test_a_fan_out_for_a_signal_this_database_lacks_does_nothing(owner, remotes, instruments):
    _telegram(owner)
    assert event_fanout(event_type="signal.created", signal_id=987654321) == []
    assert event_fanout(event_type="signal.amended", signal_id=make_signal().id, amendment_id=987654321) == []
    assert not Message.objects.exists()
