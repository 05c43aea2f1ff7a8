"""Admin: publish and amend signals through the same services as the API; never
edit or delete.

The add form parses types (the one price rule) and the service judges them
(`signal_validate` for the form's errors, `signal_create` to publish). The change
page is read-only with the amendment history; amendments (move stop, close,
cancel) go through `signal_event_create`, from the change page or as list actions.
Refused deletes and edits answer 403 on the read-only page with the reason shown,
logged as one line.
"""
from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .forms import AmendForm, SignalAddForm
from .models import EventType, ImmutableSignalError, Instrument, Signal, SignalEvent, SignalOutcome, UserReceipt
from .prices import decimal_str
from .selectors import signal_payload
from .services import AmendmentRefused, SignalValidationError, signal_create, signal_event_create
from .timeframes import DEFAULT_SIGNAL_TIMEFRAME

logger = logging.getLogger(__name__)


class _RefuseNulQueryMixin:
    """A NUL byte in a search or filter would reach PostgreSQL as a DataError (a 500);
    answer 400 instead."""

    def changelist_view(self, request, extra_context=None):
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            return HttpResponseBadRequest("Search and filter values must not contain NUL characters.")
        return super().changelist_view(request, extra_context)


class _ExplainRefusalMixin:
    """Deletes (and, with `edit_refusal`, edits) are refused with the read-only change
    page, the reason as an error message and status 403: not a bare 403 page, and
    one log line instead of a PermissionDenied traceback."""

    delete_refusal = "These rows are permanent: they can never be deleted."
    edit_refusal: str | None = None

    def _refused(self, request, object_id: str, reason: str):
        logger.warning("admin refused %s of %s %s by %s: %s", "delete" if "/delete/" in request.path else "edit",
                       self.model._meta.model_name, object_id, request.user, reason)
        messages.error(request, reason)
        request.method = "GET"  # render the page as a read-only view, whatever was posted
        response = super().changeform_view(request, object_id)
        if response.status_code == 200:
            response.status_code = 403
            # Our line above says who and why; skip django.request's second "Forbidden:"
            # line (Django's own marker; test_admin_lifecycle pins exactly one line).
            response._has_been_logged = True
        return response

    def delete_view(self, request, object_id, extra_context=None):
        return self._refused(request, object_id, self.delete_refusal)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None and request.method == "POST" and self.edit_refusal:
            return self._refused(request, object_id, self.edit_refusal)
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(Instrument)
class InstrumentAdmin(_ExplainRefusalMixin, _RefuseNulQueryMixin, admin.ModelAdmin):
    list_display = ("symbol", "market", "base", "quote", "tick_size", "active")
    list_filter = ("market", "active")
    search_fields = ("symbol", "base", "quote")
    delete_refusal = "Instruments stay because permanent signals refer to them: untick 'active' instead."

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnlyInline:
    """Shown on the change page, never added, changed or deleted there."""

    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SignalOutcomeInline(_ReadOnlyInline, admin.StackedInline):
    model = SignalOutcome
    fields = ("status", "closed_at", "exit_price_shown", "r_multiple", "stop_shown", "legs", "evaluated_until")
    readonly_fields = fields

    @admin.display(description="exit price")
    def exit_price_shown(self, obj):
        return decimal_str(obj.exit_price) or "-"

    @admin.display(description="stop (tracker)")
    def stop_shown(self, obj):
        return decimal_str(obj.stop_price) or "-"



class SignalEventInline(_ReadOnlyInline, admin.TabularInline):
    """The amendment history, oldest first, read-only."""

    model = SignalEvent
    fields = ("id", "type", "price_shown", "reason", "created_at", "created_by")
    readonly_fields = fields
    ordering = ("id",)
    verbose_name_plural = "amendments (permanent)"

    @admin.display(description="price")
    def price_shown(self, obj):
        return decimal_str(obj.price) or "-"



def _price(field: str):
    @admin.display(description=field.replace("_", " "), ordering=field)
    def shown(self, obj):
        return decimal_str(getattr(obj, field))
    return shown


@admin.register(Signal)
class SignalAdmin(_ExplainRefusalMixin, _RefuseNulQueryMixin, admin.ModelAdmin):
    list_display = ("id", "symbol", "market", "direction", "entry", "stop", "take_profit_shown",
                    "confidence", "source", "outcome_status", "created_at")
    list_filter = ("market", "source", "direction", "outcome__status", "timeframe")
    search_fields = ("symbol", "note", "source")
    ordering = ("-id",)
    list_select_related = ("outcome",)
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is waste
    actions = ["close_signals", "cancel_signals"]
    inlines = [SignalOutcomeInline, SignalEventInline]
    readonly_fields = ("id", "instrument", "symbol", "market", "direction", "entry", "stop",
                       "take_profit_shown", "ladder", "stop_rule", "effective_stop", "amend", "confidence",
                       "timeframe", "source", "note", "created_at", "expires_at", "created_by", "trigger_config_id",
                       "trigger_timeframe", "trigger_candle_open_time", "external_id")
    delete_refusal = "Signals are permanent: they can never be deleted."
    edit_refusal = ("Signals are permanent: their content can never be edited. "
                    "Use an amendment (move stop, close, cancel) instead.")

    entry = _price("entry_price")
    stop = _price("stop_loss")
    take_profit_shown = _price("take_profit")

    @admin.display(description="outcome", ordering="outcome__status")
    def outcome_status(self, obj):
        try:
            return obj.outcome.status
        except SignalOutcome.DoesNotExist:
            return "open"

    @admin.display(description="targets")
    def ladder(self, obj):
        return ", ".join(f"{t['price']} x {t['portion']}" for t in obj.target_ladder)

    @admin.display(description="stop in force")
    def effective_stop(self, obj):
        return signal_payload(obj)["effective_stop"]

    @admin.display(description="amend")
    def amend(self, obj):
        url = reverse("admin:signals_signal_amend", args=[obj.pk])
        return format_html('<a class="button" href="{}">Move stop, close or cancel</a>', url)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # never offered
        return actions

    def get_urls(self):
        amend = path("<path:object_id>/amend/", self.admin_site.admin_view(self.amend_view),
                     name="signals_signal_amend")
        return [amend, *super().get_urls()]

    def _amend(self, request, signal: Signal, **event) -> str | None:
        """Record one amendment; return the problem to show, or None."""
        try:
            signal_event_create(signal_id=signal.pk, created_by=request.user, **event)
        except AmendmentRefused as exc:
            return str(exc)
        except SignalValidationError as exc:
            return "; ".join(" ".join(v) for v in exc.errors.values())
        return None

    def amend_view(self, request, object_id):
        signal = self.get_object(request, object_id)
        if signal is None or not self.has_view_permission(request, signal):
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = AmendForm(request.POST or None)
        status = 200
        if request.method == "POST" and form.is_valid():
            try:
                signal_event_create(signal_id=signal.pk, event_type=form.cleaned_data["type"],
                                    price=form.cleaned_data["price"], reason=form.cleaned_data["reason"],
                                    created_by=request.user)
            except SignalValidationError as exc:
                for field, problems in exc.errors.items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
                status = 400
            except AmendmentRefused as exc:
                messages.error(request, str(exc))
                status = 403 if exc.code == "not_publisher" else 409
            else:
                messages.success(request, f"Recorded: {form.cleaned_data['type']} on signal #{signal.pk}.")
                return HttpResponseRedirect(reverse("admin:signals_signal_change", args=[signal.pk]))
        elif request.method == "POST":
            status = 400
        context = {**self.admin_site.each_context(request), "opts": self.opts, "signal": signal, "form": form,
                   "title": f"Amend signal #{signal.pk}", "effective_stop": signal_payload(signal)["effective_stop"]}
        return TemplateResponse(request, "admin/signals/signal/amend.html", context, status=status)

    def _bulk_amend(self, request, queryset, event_type: str) -> None:
        done, problems = 0, []
        for signal in queryset:
            problem = self._amend(request, signal, event_type=event_type, reason=f"{event_type} from the admin")
            if problem:
                problems.append(f"#{signal.pk}: {problem}")
            else:
                done += 1
        if done:
            messages.success(request, f"{event_type.capitalize()} recorded for {done} signal(s).")
        for problem in problems:
            messages.error(request, problem)

    @admin.action(description="Close selected signals at the next trade")
    def close_signals(self, request, queryset):
        self._bulk_amend(request, queryset, EventType.CLOSE)

    @admin.action(description="Cancel selected signals (only before any target or stop)")
    def cancel_signals(self, request, queryset):
        self._bulk_amend(request, queryset, EventType.CANCEL)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SignalAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return SignalAddForm.Meta.fields
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        # Viewing stays possible through the view permission; saving never is.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """Publish through signal_create and answer like the admin does (log entry,
        message, redirect); an invalid form is re-shown by the standard view."""
        if request.method == "POST" and self.has_add_permission(request):
            form = self.get_form(request)(request.POST, request.FILES)
            if form.is_valid():
                try:
                    signal = signal_create(**form.service_kwargs, created_by=request.user).signal
                except SignalValidationError as exc:  # raced with a change to the instrument
                    messages.error(request, str(exc))
                    return HttpResponseRedirect(request.path)
                else:
                    self.log_addition(request, signal, [{"added": {}}])
                    messages.success(request, f"Signal #{signal.pk} published.")
                    return HttpResponseRedirect(reverse("admin:signals_signal_change", args=[signal.pk]))
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # Never reached (add_view publishes through the service, edits are refused);
        # kept so no admin path can save a Signal instance directly.
        raise ImmutableSignalError("Signals are published through signal_create and never edited.")

    def save_related(self, request, form, formsets, change):
        pass

    def get_changeform_initial_data(self, request):
        return {"source": "manual", "timeframe": DEFAULT_SIGNAL_TIMEFRAME, "confidence": 70}


@admin.register(UserReceipt)
class UserReceiptAdmin(_RefuseNulQueryMixin, admin.ModelAdmin):
    """Each user's last delivered (acknowledged) signal."""

    list_display = ("user", "last_ack_id", "updated_at")
    search_fields = ("user__username",)
    ordering = ("-updated_at",)
    readonly_fields = ("user", "last_ack_id", "updated_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
