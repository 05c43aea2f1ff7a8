"""Reads of the outcome tracker: open signals with their stored progress, new
amendments, and the 1m candles that decide time the stream did not cover."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max

from pipeline.models import Candle
from signals.models import OutcomeStatus, SignalEvent, SignalOutcome

from .book import Candle1m, Tracked, at_of
from .engine import EngineInputError, levels_build
from .records import state_from_record

logger = logging.getLogger(__name__)

_OPEN_FIELDS = (
    "signal_id", "status", "legs", "state", "evaluated_until", "closed_at", "exit_price",
    "signal__symbol", "signal__direction", "signal__entry_price", "signal__stop_loss", "signal__take_profit",
    "signal__targets", "signal__stop_rule", "signal__created_at", "signal__expires_at",
)


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    signal_id: int
    type: str
    created_at: dt.datetime
    price: Decimal | None

    def as_tape(self) -> tuple[int, str, dt.datetime, Decimal | None]:
        return (self.id, self.type, self.created_at, self.price)


def outcomes_open(*, after_signal_id: int = 0, expired_before: dt.datetime | None = None) -> list[Tracked]:
    """Every open outcome of a signal with id > after_signal_id (and, if given, an
    expiry before `expired_before`), as the engine state its row describes, oldest
    first. A signal whose levels the engine cannot apply (a row older than the
    validation) is logged and left open."""
    qs = SignalOutcome.objects.filter(status=OutcomeStatus.OPEN, signal_id__gt=after_signal_id)
    if expired_before is not None:
        qs = qs.filter(signal__expires_at__lt=expired_before)
    rows = qs.order_by("signal_id").values_list(*_OPEN_FIELDS)
    tracked = []
    for (signal_id, status, legs, state, evaluated_until, closed_at, exit_price, symbol, direction, entry,
         stop, take_profit, targets, stop_rule, created_at, expires_at) in rows.iterator(chunk_size=2000):
        try:
            levels = levels_build(direction=direction, entry=entry, stop=stop, take_profit=take_profit,
                                  targets=targets, stop_rule=stop_rule, created_at=created_at,
                                  expires_at=expires_at)
        except (EngineInputError, KeyError, TypeError, ArithmeticError) as exc:
            logger.error("signal #%s cannot be tracked: %s", signal_id, exc)
            continue
        engine_state = state_from_record(levels, status=status, legs=legs, state=state,
                                         evaluated_until=evaluated_until, closed_at=closed_at,
                                         exit_price=exit_price)
        tracked.append(Tracked(signal_id=signal_id, symbol=symbol, levels=levels, state=engine_state,
                               last_event_id=int((state or {}).get("last_event_id") or 0),
                               persisted_stop=engine_state.effective_stop))
    return tracked


def events_after(*, after_id: int, signal_ids: list[int] | None = None) -> list[EventRow]:
    """Amendments with id > after_id (of the given signals only, if given), id order."""
    qs = SignalEvent.objects.filter(id__gt=after_id)
    if signal_ids is not None:
        qs = qs.filter(signal_id__in=signal_ids)
    return [EventRow(*row) for row in
            qs.order_by("id").values_list("id", "signal_id", "type", "created_at", "price")]


def event_last_id() -> int:
    return SignalEvent.objects.aggregate(m=Max("id"))["m"] or 0


def candles_between(*, symbol: str, after_ms: int, before_ms: int) -> list[Candle1m]:
    """Stored 1m candles of `symbol` lying wholly inside (after_ms, before_ms): a minute
    that began at or before after_ms, or ends after before_ms, was partly streamed and
    is left out so no trade is counted twice. Oldest first."""
    rows = (Candle.objects.filter(instrument__symbol=symbol, timeframe="1m", open_time__gt=at_of(after_ms),
                                  open_time__lte=at_of(before_ms - 60_000))
            .order_by("open_time").values_list("open_time", "open", "high", "low", "close"))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return [Candle1m(open_ms=(t - epoch) // dt.timedelta(milliseconds=1), open=o, high=h, low=lo, close=c)
            for t, o, h, lo, c in rows]


def close_before(*, symbol: str, at: dt.datetime) -> Decimal | None:
    """The close of the last 1m candle that began before `at` (the last price known
    before it when no trade was streamed), or None."""
    return (Candle.objects.filter(instrument__symbol=symbol, timeframe="1m", open_time__lt=at)
            .order_by("-open_time").values_list("close", flat=True).first())
