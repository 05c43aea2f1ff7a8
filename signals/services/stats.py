"""Keeps the per-source statistics tables (SourceDayStats, SourceDayLegStats) true.

/api/stats/ must stay fast at millions of signals, so it never aggregates the signals
table per request: every write that changes a figure adds its share here, inside the
same transaction (a rolled-back signal is never counted). Counting is an upsert with
increments (INSERT ... ON CONFLICT DO UPDATE, on PostgreSQL and SQLite alike). The
rules of what counts as a win, loss, breakeven and so on are in docs/methodology.md
and in `outcome_counts` below, the one place that applies them.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any, Iterable

from django.db import connection

from ..models import OutcomeStatus, Signal, SignalOutcome, SourceDayLegStats, SourceDayStats
from ..selectors import outcome_payload

_DAY_FIELDS = ("signals", "closed", "wins", "losses", "breakeven", "expired", "cancelled", "r_sum",
               "excursions", "mfe_sum", "mae_sum")
_LEG_FIELDS = ("eligible", "reached", "r_sum")


def _day(created_at: dt.datetime) -> dt.date:
    return created_at.astimezone(dt.timezone.utc).date()


def _dec(value: Any) -> Decimal:
    return Decimal("0") if value is None else Decimal(str(value))


def outcome_counts(*, status: str, r_multiple: Any, mfe_r: Any, mae_r: Any,
                   legs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What one finished outcome adds: (day counts, one count per leg, target order).

    Cancelled: only `cancelled`. Otherwise it is closed with an R: a win above 0,
    a loss below 0, breakeven at exactly 0; expired ones are counted as closed too
    (they exit at the last price before expiry) and also under `expired`.
    """
    if status == OutcomeStatus.OPEN:
        return {}, []
    if status == OutcomeStatus.CANCELLED:
        return {"cancelled": 1}, []
    r = _dec(r_multiple)
    counts: dict[str, Any] = {"closed": 1, "r_sum": r, "wins": int(r > 0), "losses": int(r < 0),
                              "breakeven": int(r == 0), "expired": int(status == OutcomeStatus.EXPIRED)}
    if mfe_r is not None or mae_r is not None:
        counts.update(excursions=1, mfe_sum=_dec(mfe_r), mae_sum=_dec(mae_r))
    leg_counts = [{"eligible": 1, "reached": int(leg.get("status") == OutcomeStatus.TP_HIT),
                   "r_sum": _dec(leg.get("r"))} for leg in legs]
    return counts, leg_counts


def _upsert(model, keys: dict[str, Any], fields: tuple[str, ...], counts: dict[str, Any]) -> None:
    table = model._meta.db_table
    columns = [*keys, *fields]
    values = [*keys.values(), *(counts.get(f, 0) for f in fields)]
    increments = ", ".join(f"{f} = {table}.{f} + excluded.{f}" for f in fields)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
           f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {increments}")
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def stats_count_signal(signal: Signal) -> None:
    """Count a new signal (call inside the transaction that inserts it)."""
    _upsert(SourceDayStats, {"source": signal.source, "day": _day(signal.created_at)}, _DAY_FIELDS, {"signals": 1})


def stats_count_outcome(signal: Signal, outcome: SignalOutcome) -> None:
    """Count an outcome that has just left `open` (inside the transaction that closed
    it: the forward-only trigger guarantees this happens once per signal)."""
    counts, legs = outcome_counts(status=outcome.status, r_multiple=outcome.r_multiple, mfe_r=outcome.mfe_r,
                                  mae_r=outcome.mae_r, legs=outcome_payload(outcome, signal)["legs"])  # stored, or derived for old rows
    if not counts:
        return
    day = _day(signal.created_at)
    _upsert(SourceDayStats, {"source": signal.source, "day": day}, _DAY_FIELDS, counts)
    for number, leg in enumerate(legs, start=1):
        _upsert(SourceDayLegStats, {"source": signal.source, "day": day, "target": number}, _LEG_FIELDS, leg)


def _accumulate(rows: Iterable[tuple]) -> tuple[dict, dict]:
    days: dict[tuple, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    legs: dict[tuple, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for source, created_at, status, r, mfe, mae, stored_legs, targets, take_profit in rows:
        key = (source, _day(created_at))
        days[key]["signals"] += 1
        if stored_legs:
            leg_list = stored_legs
        else:  # a row closed before legs existed: every target took the outcome's status and R
            ladder = targets or [{"price": str(take_profit)}]
            leg_list = [{"status": status, "r": r} for _ in ladder]
        counts, leg_counts = outcome_counts(status=status or OutcomeStatus.OPEN, r_multiple=r, mfe_r=mfe,
                                            mae_r=mae, legs=leg_list)
        for field, value in counts.items():
            days[key][field] += value
        for number, leg in enumerate(leg_counts, start=1):
            for field, value in leg.items():
                legs[(*key, number)][field] += value
    return days, legs


def stats_rebuild(*, signal_model=Signal, day_model=SourceDayStats, leg_model=SourceDayLegStats) -> int:
    """Recompute both tables from every signal (one pass; for the migration that
    introduced them, and for repair). Returns the number of signals read. The model
    arguments let a migration pass its historical models."""
    rows = signal_model.objects.order_by().values_list(
        "source", "created_at", "outcome__status", "outcome__r_multiple", "outcome__mfe_r", "outcome__mae_r",
        "outcome__legs", "targets", "take_profit").iterator(chunk_size=5000)
    counted = 0

    def _counting(source_rows):
        nonlocal counted
        for row in source_rows:
            counted += 1
            yield row

    days, legs = _accumulate(_counting(rows))
    day_model.objects.all().delete()
    leg_model.objects.all().delete()
    day_model.objects.bulk_create([day_model(source=s, day=d, **c) for (s, d), c in days.items()], batch_size=1000)
    leg_model.objects.bulk_create([leg_model(source=s, day=d, target=n, **c) for (s, d, n), c in legs.items()],
                                  batch_size=1000)
    return counted
