"""Reads for the strategy runner, the backtest and the strategy API: configs, the
closed candles a strategy decides on, and a config's last signal."""
from __future__ import annotations

import datetime as dt
from typing import Iterable

from django.db.models import QuerySet

from signals.models import Signal

from .aggregation import dt_to_ms
from .models import Candle, StrategyConfig
from .strategies import Bar

_CANDLE_FIELDS = ("open_time", "open", "high", "low", "close", "volume")


def strategy_config_list() -> QuerySet[StrategyConfig]:
    """Every config with its instrument, oldest first."""
    return StrategyConfig.objects.select_related("instrument").order_by("id")


def strategy_config_get(*, config_id: int) -> StrategyConfig | None:
    return StrategyConfig.objects.select_related("instrument").filter(pk=config_id).first()


def bars_from_candles(rows: Iterable[tuple]) -> list[Bar]:
    """(open_time, open, high, low, close, volume) rows as Bars."""
    return [Bar(dt_to_ms(t), float(o), float(h), float(lo), float(c), float(v)) for t, o, h, lo, c, v in rows]


def closed_bars(*, instrument_id: int, timeframe: str, until: dt.datetime | None = None, limit: int,
                since: dt.datetime | None = None) -> list[Bar]:
    """Closed candles of a series as Bars, oldest first: the newest `limit` with open
    time <= `until` (all when None), or, with `since`, from `since` on."""
    qs = Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe, closed=True)
    if until is not None:
        qs = qs.filter(open_time__lte=until)
    if since is not None:
        return bars_from_candles(qs.filter(open_time__gte=since).order_by("open_time")
                                 .values_list(*_CANDLE_FIELDS)[:limit])
    rows = list(qs.order_by("-open_time").values_list(*_CANDLE_FIELDS)[:limit])
    rows.reverse()
    return bars_from_candles(rows)


def closed_candle_rows(*, instrument_id: int, timeframe: str, since: dt.datetime, until: dt.datetime) -> list[tuple]:
    """Closed candles with open time in [since, until) as exact (open_time, open, high,
    low, close, volume) Decimal rows, oldest first (backtests score with Decimals)."""
    return list(Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe, closed=True,
                                      open_time__gte=since, open_time__lt=until)
                .order_by("open_time").values_list(*_CANDLE_FIELDS))


def config_last_trigger_ms(*, config_id: int) -> int | None:
    """Open time (epoch ms) of the candle that triggered the config's newest signal."""
    last = (Signal.objects.filter(trigger_config_id=config_id).order_by("-trigger_candle_open_time")
            .values_list("trigger_candle_open_time", flat=True).first())
    return None if last is None else dt_to_ms(last)
