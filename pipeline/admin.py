"""Admin views of market data: candles are read-only (only the pipeline's upserts
write them); readiness shows each market's state and the reason for it; strategy
configs are edited here or over /api/strategies/ under the same rules."""
from __future__ import annotations

from django import forms
from django.contrib import admin

from signals.models import Signal

from .models import Candle, MarketReadiness, StrategyConfig
from .strategies import STRATEGIES
from .strategy_services import strategy_config_validate


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Candle)
class CandleAdmin(_ReadOnly):
    list_display = ("instrument", "timeframe", "open_time", "open", "high", "low", "close", "volume", "trades",
                    "closed", "source", "updated_at")
    list_filter = ("timeframe", "closed", "source", "instrument__market", "instrument")
    list_select_related = ("instrument",)
    ordering = ("-open_time",)
    show_full_result_count = False   # COUNT(*) over millions of candles on every page is wasted work


@admin.register(MarketReadiness)
class MarketReadinessAdmin(_ReadOnly):
    list_display = ("market", "state", "reason", "updated_at")
    list_filter = ("state",)


class StrategyConfigForm(forms.ModelForm):
    strategy = forms.ChoiceField(choices=[(name, name) for name in STRATEGIES])

    class Meta:
        model = StrategyConfig
        fields = ("strategy", "instrument", "timeframe", "params", "enabled", "cooldown_minutes")

    def clean(self):
        data = super().clean()
        instrument = data.get("instrument")
        if instrument is None or self.errors:
            return data
        clean, errors = strategy_config_validate(
            strategy=data.get("strategy"), symbol=instrument.symbol, timeframe=data.get("timeframe"),
            params=data.get("params") or {}, cooldown_minutes=data.get("cooldown_minutes"),
            enabled=data.get("enabled"))
        for name, messages in errors.items():
            field = "instrument" if name == "symbol" else name
            if name == "params" and isinstance(messages, dict):
                messages = [f"{param}: {' '.join(m)}" for param, m in messages.items()]
            self.add_error(field if field in self.fields else None, messages)
        if not errors:
            data["params"] = clean["params"]   # defaults filled in, types normalized
        return data


@admin.register(StrategyConfig)
class StrategyConfigAdmin(admin.ModelAdmin):
    form = StrategyConfigForm
    list_display = ("id", "strategy", "instrument", "timeframe", "enabled", "cooldown_minutes",
                    "last_candle_open_time", "last_evaluated_at")
    list_filter = ("enabled", "strategy", "timeframe", "instrument")
    list_select_related = ("instrument",)
    readonly_fields = ("last_candle_open_time", "last_evaluated_at", "created_at", "updated_at")

    def has_delete_permission(self, request, obj=None):
        # Configs that made signals stay, so every automated signal can be traced back.
        if obj is not None and Signal.objects.filter(trigger_config_id=obj.pk).exists():
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # The bulk delete would not ask per config whether it made signals.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

