"""The beat task's safety net: signals whose expiry passed while no feed process ran
are decided from stored candles first, then expired at the last price before it."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from pipeline.outcomes.book import at_of, ms_of
from pipeline.outcomes.services import outcomes_expire_overdue
from pipeline.services import klines_ingest
from pipeline.tasks import outcomes_expire_overdue as expire_task
from pipeline.market_data import Kline
from signals.models import SignalOutcome
from signals.services import signal_create

MINUTE = 60_000


def _kline(open_ms, o, h, lo, c):
    return Kline(symbol="BTCUSDT", timeframe="1m", open_ms=open_ms, open=Decimal(o), high=Decimal(h),
                 low=Decimal(lo), close=Decimal(c), volume=Decimal("1"), trades=1, closed=True)


def _signal(created_ms, expires_ms):
    return signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                         take_profit="120", confidence=60, created_at=at_of(created_ms),
                         expires_at=at_of(expires_ms)).signal


def test_it_decides_overdue_expiries_by_candles_first_then_the_last_close(instruments):
    base = ms_of(timezone.now()) // MINUTE * MINUTE - 30 * MINUTE
    klines_ingest(klines=[
        _kline(base + MINUTE, "100", "104", "97", "103"),
        _kline(base + 2 * MINUTE, "103", "121", "101", "118"),      # the target, before b's expiry
        _kline(base + 3 * MINUTE, "118", "119", "112", "113"),
    ])
    a = _signal(base, base + 2 * MINUTE)                  # expires before the target's minute
    b = _signal(base, base + 3 * MINUTE + 30_000)         # the target comes first
    recent = _signal(base, ms_of(timezone.now()) - 60_000)   # within the grace: the feed's job
    assert outcomes_expire_overdue(now=timezone.now()) == 2
    row = SignalOutcome.objects.get(signal_id=a.id)
    assert (row.status, row.exit_price, row.closed_at) == ("expired", Decimal("103"), a.expires_at)
    assert row.r_multiple == Decimal("0.3000") and row.legs[0]["status"] == "expired"
    row = SignalOutcome.objects.get(signal_id=b.id)
    assert (row.status, row.exit_price, row.closed_at) == ("tp_hit", Decimal("120"), at_of(base + 2 * MINUTE))
    assert SignalOutcome.objects.get(signal_id=recent.id).status == "open"
    assert expire_task() == 0                             # nothing left, and safe to run again
    assert SignalOutcome.objects.get(signal_id=recent.id).status == "open"
    assert timezone.now() - recent.expires_at < dt.timedelta(minutes=5)
