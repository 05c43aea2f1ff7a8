"""Admin views of market data: candles are read-only (only the pipeline's upserts
write them); readiness shows each market's state and the reason for it."""
from __future__ import annotations

from django.contrib import admin

from .models import Candle, MarketReadiness


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
