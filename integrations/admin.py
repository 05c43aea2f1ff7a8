"""Operator view: channels with their last 24 h of deliveries, failures with the
remote's own message, redelivery and resume; inbound tokens (create shows the token
once, revoke) and the log of inbound alerts."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html, format_html_join

from .models import BrowserPreference, Channel, Delivery, Event, InboundAlertLog, InboundToken
from .selectors import deliveries_recent, delivery_counts_24h
from .services import (
    RedeliveryRefused, channel_check, inbound_token_create, inbound_token_revoke, message_redeliver,
    webhook_secret_new,
)
from .tasks import message_deliver_task


class ChannelAdminForm(forms.ModelForm):
    """An operator adds a community channel here under the same rules as the API;
    the bot token is write-only (blank on edit keeps the current one)."""

    url = forms.URLField(required=False, max_length=2000, assume_scheme="https",
                         help_text="webhook endpoint or Discord webhook URL")
    bot_token = forms.CharField(required=False, max_length=200, widget=forms.PasswordInput(render_value=False),
                                help_text="Telegram only. Leave blank to keep the current token.")

    class Meta:
        model = Channel
        exclude = ["secret", "failing_since"]

    def clean(self):
        data = super().clean()
        creating = self.instance.pk is None
        if not creating and not data.get("bot_token"):
            data["bot_token"] = self.instance.bot_token
        values = {k: v for k, v in data.items() if k in ("url", "bot_token", "chat_id", "topic_id", "events",
                                                          "markets", "sources", "min_confidence")}
        for field, problems in channel_check(kind=data.get("kind") or "", values=values, creating=True).items():
            self.add_error(field if field in self.fields else None, problems)
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "owner", "name", "target", "enabled", "paused", "last_24h"]
    list_filter = ["kind", "enabled"]
    search_fields = ["owner__username", "name", "url", "chat_id"]
    form = ChannelAdminForm
    readonly_fields = ["secret_hint", "failing_since", "created_at", "updated_at", "last_day"]
    actions = ["resume"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")

    @admin.display(description="target")
    def target(self, channel: Channel) -> str:
        return channel.url or f"chat {channel.chat_id}" + (f" topic {channel.topic_id}" if channel.topic_id else "")

    @admin.display(description="paused", boolean=True)
    def paused(self, channel: Channel) -> bool:
        return bool(channel.paused_reason)

    @admin.display(description="last 24 h (ok / failed)")
    def last_24h(self, channel: Channel) -> str:
        row = delivery_counts_24h(channel_ids=[channel.pk]).get(channel.pk, {"ok": 0, "failed": 0})
        return format_html('<a href="../delivery/?channel__id__exact={}">{} / {}</a>', channel.pk, row["ok"],
                           row["failed"])

    @admin.display(description="deliveries of the last 24 h (newest 100)")
    def last_day(self, channel: Channel) -> str:
        rows = deliveries_recent(channel=channel, hours=24, limit=100)
        if not rows:
            return "—"
        body = format_html_join(
            "", "<tr><td>{}</td><td>{} #{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f"{d.started_at:%Y-%m-%d %H:%M:%S}", d.message.event.type, d.message.event.signal_id, d.attempt,
              "ok" if d.success else "failed", d.status_code or "—", d.error or d.response_excerpt) for d in rows))
        head = format_html("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                           "time (UTC)", "event", "attempt", "result", "status", "remote said / error")
        return format_html("<table>{}{}</table>", head, body)

    @admin.display(description="signing secret")
    def secret_hint(self, channel: Channel) -> str:
        return f"{channel.secret[:10]}… (shown to the owner once)" if channel.secret else "—"

    def save_model(self, request, obj, form, change):
        if not change and obj.kind == "webhook":
            obj.secret = webhook_secret_new()
            self.message_user(request, f"Signing secret of the new webhook, shown once: {obj.secret}",
                              messages.WARNING)
        super().save_model(request, obj, form, change)

    @admin.action(description="Resume selected paused channels")
    def resume(self, request, queryset):
        count = queryset.exclude(paused_reason="").update(paused_reason="", failing_since=None)
        self.message_user(request, f"{count} channel(s) resumed.", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["started_at", "channel", "event_type", "attempt", "success", "status_code", "latency_ms",
                    "error", "response_excerpt"]
    list_filter = ["success", "channel__kind", ("started_at", admin.DateFieldListFilter)]
    list_select_related = ["channel", "message__event"]
    search_fields = ["message__id", "error"]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="event")
    def event_type(self, delivery: Delivery) -> str:
        return f"{delivery.message.event.type} #{delivery.message.event.signal_id}"

    @admin.action(description="Redeliver the events of the selected attempts")
    def redeliver(self, request, queryset):
        done, refused = set(), []
        for delivery in queryset.select_related("message", "channel"):
            key = (delivery.channel_id, delivery.message.event_id)
            if key in done:
                continue
            done.add(key)
            try:
                message = message_redeliver(channel=delivery.channel, event_id=delivery.message.event_id)
            except RedeliveryRefused as exc:
                refused.append(f"channel #{delivery.channel_id}: {exc}")
                continue
            transaction.on_commit(lambda message_id=message.id: message_deliver_task.delay(message_id))
        self.message_user(request, f"{len(done) - len(refused)} event(s) queued for redelivery.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not queued: " + "; ".join(refused), messages.WARNING)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "signal_id", "symbol", "source", "created_at"]
    list_filter = ["type"]
    readonly_fields = ["type", "key", "signal_id", "symbol", "market", "source", "confidence", "data", "body",
                       "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(InboundToken)
class InboundTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "publisher", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["source", "publisher"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return ["source", "publisher"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, raw = inbound_token_create(source=obj.source, publisher=obj.publisher)
        obj.pk = token.pk
        self.message_user(request, f"Token for {token.source!r}, shown once: {raw}", messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the alert log keeps pointing at the token

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            inbound_token_revoke(token=token)
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(InboundAlertLog)
class InboundAlertLogAdmin(admin.ModelAdmin):
    list_display = ["received_at", "token", "result", "http_status", "signal_id", "error", "body_excerpt"]
    list_filter = ["result", "token"]
    readonly_fields = [f.name for f in InboundAlertLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.register(BrowserPreference)
