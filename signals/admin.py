"""Admin: publish signals through the same service as the API; never edit or delete.

The add form runs `signal_create` (same validation, lock, idempotency and broadcast
as the API); the change view is read-only; delete is removed everywhere.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest

from .models import Instrument, Signal, SignalOutcome
from .services import TIMEFRAMES, SignalValidationError, signal_create, signal_validate


class _RefuseNulQueryMixin:
    """A NUL byte in a search or filter would reach PostgreSQL as a DataError (a 500);
    answer 400 instead."""

    def changelist_view(self, request, extra_context=None):
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            return HttpResponseBadRequest("Search and filter values must not contain NUL characters.")
        return super().changelist_view(request, extra_context)


@admin.register(Instrument)
class InstrumentAdmin(_RefuseNulQueryMixin, admin.ModelAdmin):
    list_display = ("symbol", "market", "base", "quote", "tick_size", "active")
    list_filter = ("market", "active")
    search_fields = ("symbol", "base", "quote")

    def has_delete_permission(self, request, obj=None):
        # Instruments referenced by permanent signals must stay; deactivate instead.
        return False


class SignalAddForm(forms.ModelForm):
    timeframe = forms.ChoiceField(choices=[(t, t) for t in TIMEFRAMES], initial="1h")

    class Meta:
        model = Signal
        fields = ["instrument", "direction", "entry_price", "stop_loss", "take_profit",
                  "confidence", "timeframe", "source", "note", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instrument"].queryset = Instrument.objects.filter(active=True)
        self.fields["source"].initial = "manual"

    def _post_clean(self):
        # Skip ModelForm's instance construction/validation: the service is the judge.
        pass

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.service_kwargs = {
            "symbol": cleaned["instrument"].symbol,
            "direction": cleaned.get("direction"),
            "entry_price": cleaned.get("entry_price"),
            "stop_loss": cleaned.get("stop_loss"),
            "take_profit": cleaned.get("take_profit"),
            "confidence": cleaned.get("confidence"),
            "timeframe": cleaned.get("timeframe"),
            "source": cleaned.get("source") or "manual",
            "note": cleaned.get("note") or "",
            "expires_at": cleaned.get("expires_at"),
        }
        for field, problems in signal_validate(**self.service_kwargs).items():
            target = "instrument" if field == "symbol" else field
            for problem in problems:
                self.add_error(target if target in self.fields else None, problem)
        return cleaned


class SignalOutcomeInline(admin.StackedInline):
    model = SignalOutcome
    can_delete = False
    extra = 0
    fields = ("status", "closed_at", "exit_price", "r_multiple")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Signal)
class SignalAdmin(_RefuseNulQueryMixin, admin.ModelAdmin):
    list_display = ("id", "symbol", "market", "direction", "entry_price", "stop_loss", "take_profit",
                    "confidence", "source", "outcome_status", "created_at")
    list_filter = ("market", "source", "direction", "outcome__status", "timeframe")
    search_fields = ("symbol", "note", "source")
    ordering = ("-id",)
    list_select_related = ("outcome",)
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is waste
    actions = None  # removes "delete selected" and any other bulk action
    inlines = [SignalOutcomeInline]
    readonly_fields = ("id", "instrument", "symbol", "market", "direction", "entry_price", "stop_loss",
                       "take_profit", "confidence", "timeframe", "source", "note", "created_at",
                       "expires_at", "created_by")

    @admin.display(description="outcome", ordering="outcome__status")
    def outcome_status(self, obj):
        try:
            return obj.outcome.status
        except SignalOutcome.DoesNotExist:
            return "open"

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

    def save_model(self, request, obj, form, change):
        if change:
            raise ValidationError("Signals are permanent and cannot be edited.")
        try:
            result = signal_create(**form.service_kwargs, created_by=request.user)
        except SignalValidationError as exc:  # raced with a change to the instrument
            messages.error(request, str(exc))
            raise
        # Hand the created row back so the admin's log and redirect use the real id.
        obj.__dict__.update({k: v for k, v in result.signal.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = result.signal._state.db

    def save_related(self, request, form, formsets, change):
        pass  # the outcome row is created by the service

    def get_changeform_initial_data(self, request):
        return {"source": "manual", "timeframe": "1h", "confidence": 70}
