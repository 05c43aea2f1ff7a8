"""Bulk candle writes: the one place that speaks SQL to the candle table.

Why raw SQL: the feed writes every ~250 ms and a backfill writes thousands of rows
per page; the ORM would issue one statement per row. On PostgreSQL the rows are
COPYed into a session temp table, then ONE round trip merges them (`INSERT ...
SELECT ... ON CONFLICT DO UPDATE`), closes the candles whose time is over and
recomputes the touched 5m/15m/1h buckets from the 1m rows and 4h/1d from the 1h
rows, all inside the database.
On SQLite (the embedded demo) an executemany of `INSERT ... ON CONFLICT DO UPDATE`
does the same merge and the rollups are computed in Python by the same pure
functions. Both merges are written from the same clause list below, so the two
databases cannot drift apart.

Three merge rules (see pipeline.aggregation for why they are safe):
  MERGE   partial 1m candles from trades: keep the earliest open and latest close by
          (trade time, trade id), max high, min low, add volume and trade counts.
  ROLLUP  5m/15m/1h recomputed from the 1m rows, 4h/1d from the 1h rows: replace
          the values.
  KLINE   exchange klines: a closed kline is final and replaces the row; an
          in-progress kline replaces an open row when it has seen at least as many
          trades as we have.
No rule ever changes a row that holds a closed exchange kline except another one.
"""
from __future__ import annotations

import datetime as dt
import weakref
from enum import Enum
from typing import Iterable, Sequence

import psycopg

from django.db import connection, transaction

from .aggregation import (
    ROLLUP_BASE,
    ROLLUP_TIMEFRAMES,
    TIMEFRAME_MS,
    PartialCandle,
    RollupBucket,
    candles_rollup,
    dt_to_ms,
    ms_to_dt,
)
from signals.models import Instrument

from .models import Candle

TABLE = Candle._meta.db_table
STAGE = "pipeline_candle_stage"
COLUMNS = (
    "instrument_id", "timeframe", "open_time", "open", "high", "low", "close", "volume", "trades",
    "first_trade_ms", "first_trade_id", "last_trade_ms", "last_trade_id", "closed", "source", "updated_at",
)
_COLS = ", ".join(f'"{c}"' for c in COLUMNS)

# Raw connections whose temp staging table is known to exist (it lives as long as
# the database session). Marked only after a commit: a rolled-back CREATE is gone.
_staged_connections: "weakref.WeakSet" = weakref.WeakSet()


class UpsertMode(str, Enum):
    MERGE = "merge"
    ROLLUP = "rollup"
    KLINE = "kline"


def _set_clauses(mode: UpsertMode, vendor: str) -> tuple[str, str]:
    """(SET list, WHERE condition) of the ON CONFLICT DO UPDATE for `mode`."""
    t = TABLE
    greatest, least = ("GREATEST", "LEAST") if vendor == "postgresql" else ("MAX", "MIN")
    final_row = f'({t}."source" = \'exchange\' AND {t}."closed")'
    if mode is UpsertMode.MERGE:
        earlier = f'(excluded."first_trade_ms", excluded."first_trade_id") < ({t}."first_trade_ms", {t}."first_trade_id")'
        later = f'(excluded."last_trade_ms", excluded."last_trade_id") > ({t}."last_trade_ms", {t}."last_trade_id")'
        sets = [
            *(f'"{c}" = CASE WHEN {earlier} THEN excluded."{c}" ELSE {t}."{c}" END'
              for c in ("open", "first_trade_ms", "first_trade_id")),
            *(f'"{c}" = CASE WHEN {later} THEN excluded."{c}" ELSE {t}."{c}" END'
              for c in ("close", "last_trade_ms", "last_trade_id")),
            f'"high" = {greatest}({t}."high", excluded."high")',
            f'"low" = {least}({t}."low", excluded."low")',
            f'"volume" = {t}."volume" + excluded."volume"',
            f'"trades" = {t}."trades" + excluded."trades"',
            f'"closed" = ({t}."closed" OR excluded."closed")',
            '"updated_at" = excluded."updated_at"',
        ]
        return ", ".join(sets), f"NOT {final_row}"
    replaced = [f'"{c}" = excluded."{c}"' for c in COLUMNS[3:] if c != "closed"]
    # Rewriting identical values would only churn row versions (REST polls repeat
    # the same closed klines every few seconds), so unchanged rows are skipped.
    values = [c for c in COLUMNS[3:15] if c != "closed"]
    distinct = "IS DISTINCT FROM" if vendor == "postgresql" else "IS NOT"
    stored_values = ", ".join(f'{t}."{c}"' for c in values)
    new_values = ", ".join(f'excluded."{c}"' for c in values)
    changed = f'(({stored_values}) {distinct} ({new_values}) OR (excluded."closed" AND NOT {t}."closed"))'
    if mode is UpsertMode.ROLLUP:
        return (", ".join([*replaced, f'"closed" = ({t}."closed" OR excluded."closed")']),
                f"NOT {final_row} AND {changed}")
    # KLINE
    where = (f'(excluded."closed" OR (NOT {t}."closed" AND ({t}."source" = \'exchange\' '
             f'OR excluded."trades" >= {t}."trades"))) AND ({changed} OR {t}."closed" <> excluded."closed")')
    return ", ".join([*replaced, '"closed" = excluded."closed"']), where


def _row(c: PartialCandle, instrument_id: int, source: str, now) -> tuple:
    return (instrument_id, c.timeframe, ms_to_dt(c.open_ms), c.open, c.high, c.low, c.close, c.volume, c.trades,
            c.first_ms, c.first_id, c.last_ms, c.last_id, c.closed, source, now)


# Namespace of the advisory locks that serialize candle writes per instrument.
_WRITE_LOCK_SPACE = 0x43_4E_44  # "CND"


def instruments_lock(*, symbols: Iterable[str] = (), instrument_ids: Iterable[int] = ()) -> dict[str, int]:
    """Look up instruments by symbol and/or id and, on PostgreSQL, serialize candle
    writers of the same instruments until the transaction ends. Returns {symbol: id}
    of those that exist.

    The feed's trade batches, a REST backfill and the fallback poller may write the
    same rows at once. Without the lock two upserts could lock rows in opposite
    orders (deadlock), and a rollup could be recomputed from a snapshot that misses
    the other writer's 1m rows. Locks are taken in id order, so lockers never wait
    in a cycle; SQLite already admits one writer at a time. Call inside a transaction.
    """
    symbols, ids = sorted(set(symbols)), sorted(set(instrument_ids))
    if not symbols and not ids:
        return {}
    table = Instrument._meta.db_table
    conditions, params = [], []
    if symbols:
        conditions.append(f'"symbol" IN ({", ".join(["%s"] * len(symbols))})')
        params.extend(symbols)
    if ids:
        conditions.append(f'"id" IN ({", ".join(["%s"] * len(ids))})')
        params.extend(ids)
    found = f'SELECT "symbol", "id" FROM {table} WHERE {" OR ".join(conditions)} ORDER BY "id"'
    if connection.vendor == "postgresql":
        # The lock is taken per row as the outer query reads the id-ordered subquery.
        found = f"SELECT f.symbol, f.id, pg_advisory_xact_lock(%s::int, f.id::int) FROM ({found}) AS f"
        params.insert(0, _WRITE_LOCK_SPACE)
    with connection.cursor() as cursor:
        cursor.execute(found, params)
        return {row[0]: row[1] for row in cursor.fetchall()}


def _ensure_stage(cursor) -> None:
    raw = connection.connection
    if raw in _staged_connections:
        return
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ("
        "instrument_id bigint, timeframe varchar(4), open_time timestamptz, open numeric, high numeric, "
        "low numeric, close numeric, volume numeric, trades bigint, first_trade_ms bigint, first_trade_id bigint, "
        "last_trade_ms bigint, last_trade_id bigint, closed boolean, source varchar(8), updated_at timestamptz)"
    )
    transaction.on_commit(lambda: _staged_connections.add(raw))


def _conflict(mode: UpsertMode) -> str:
    sets, where = _set_clauses(mode, connection.vendor)
    return f'ON CONFLICT ("instrument_id", "timeframe", "open_time") DO UPDATE SET {sets} WHERE {where}'


def _stage_rows(cursor, rows: list[tuple]) -> str:
    """COPY rows into the session's staging table; returns the merge SELECT source.
    The CTE empties the stage in the merging statement itself, so a later batch in
    the same transaction (or a test's outer transaction) never sees these rows."""
    _ensure_stage(cursor)
    with cursor.cursor.copy(f"COPY {STAGE} ({_COLS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return (f"WITH s AS (DELETE FROM {STAGE} RETURNING *) INSERT INTO {TABLE} ({_COLS}) SELECT {_COLS} FROM s "
            'ORDER BY "instrument_id", "timeframe", "open_time"')


def _close_sql(cutoffs: dict[int, int], now: dt.datetime) -> tuple[str, list]:
    """UPDATE closing every open candle of instrument id -> cutoff (epoch ms) whose
    bucket ends at or before the cutoff."""
    adapt = connection.ops.adapt_datetimefield_value
    groups, params = [], [True, adapt(now)]
    per_tf = " OR ".join('("timeframe" = %s AND "open_time" <= %s)' for _ in TIMEFRAME_MS)
    for instrument_id, cutoff in sorted(cutoffs.items()):
        groups.append(f'("instrument_id" = %s AND ({per_tf}))')
        params.append(instrument_id)
        for timeframe, size in TIMEFRAME_MS.items():
            params.extend([timeframe, adapt(ms_to_dt(cutoff - size))])
    sql = f'UPDATE {TABLE} SET "closed" = %s, "updated_at" = %s WHERE NOT "closed" AND ({" OR ".join(groups)})'
    return sql, params


def _rollup_sql(buckets: Sequence[RollupBucket], ids: dict[str, int], now: dt.datetime, base: str = "1m"
                ) -> tuple[str, list]:
    """PostgreSQL: recompute `buckets` from their stored `base` rows in one statement."""
    first = "ORDER BY m.first_trade_ms, m.first_trade_id"
    last = "ORDER BY m.last_trade_ms DESC, m.last_trade_id DESC"
    values, params = [], []
    for b in buckets:
        values.append("(%s::bigint, %s::varchar, %s::timestamptz, %s::timestamptz, %s::boolean)")
        params.extend([ids[b.symbol], b.timeframe, ms_to_dt(b.open_ms), ms_to_dt(b.close_ms), b.closed])
    sql = (
        f"INSERT INTO {TABLE} ({_COLS}) "
        "SELECT b.instrument_id, b.timeframe, b.open_time, "
        f"(array_agg(m.open {first}))[1], max(m.high), min(m.low), (array_agg(m.close {last}))[1], "
        "sum(m.volume), sum(m.trades), "
        f"(array_agg(m.first_trade_ms {first}))[1], (array_agg(m.first_trade_id {first}))[1], "
        f"(array_agg(m.last_trade_ms {last}))[1], (array_agg(m.last_trade_id {last}))[1], "
        "b.closed, %s, %s "
        f"FROM (VALUES {', '.join(values)}) AS b(instrument_id, timeframe, open_time, close_time, closed) "
        f"JOIN {TABLE} m ON m.instrument_id = b.instrument_id AND m.timeframe = %s "
        "AND m.open_time >= b.open_time AND m.open_time < b.close_time "
        "GROUP BY b.instrument_id, b.timeframe, b.open_time, b.closed "
        f"ORDER BY 1, 2, 3 {_conflict(UpsertMode.ROLLUP)}"
    )
    return sql, ["rollup", now, *params, base]


def _execute_all(cursor, statements: list[tuple[str, list]]) -> list[int]:
    """Run statements in one round trip when the cursor binds parameters client-side
    (Django's default with psycopg 3, which sends them as one simple query); else one
    by one. Returns each statement's rowcount."""
    if isinstance(cursor.cursor, psycopg.ClientCursor) and len(statements) > 1:
        cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        counts = [cursor.rowcount]
        while cursor.nextset():
            counts.append(cursor.rowcount)
        return counts
    counts = []
    for sql, params in statements:
        cursor.execute(sql, params)
        counts.append(cursor.rowcount)
    return counts


def candles_upsert(*, candles: Sequence[PartialCandle], instrument_ids: dict[str, int], mode: UpsertMode,
                   source: str, now: dt.datetime) -> int:
    """Upsert rows under `mode`'s merge rule in one statement; returns rows written
    (inserted or changed). Candles of symbols missing from `instrument_ids` are skipped.
    Call inside a transaction."""
    rows = [_row(c, instrument_ids[c.symbol], source, now) for c in candles if c.symbol in instrument_ids]
    if not rows:
        return 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"{_stage_rows(cursor, rows)} {_conflict(mode)}")
            return cursor.rowcount
        adapt = connection.ops.adapt_datetimefield_value
        rows = [(*r[:2], adapt(r[2]), *r[3:15], adapt(r[15])) for r in rows]
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        cursor.executemany(f"INSERT INTO {TABLE} ({_COLS}) VALUES ({placeholders}) {_conflict(mode)}", rows)
        return max(cursor.rowcount, 0)


def candles_write(*, candles: Sequence[PartialCandle], instrument_ids: dict[str, int], mode: UpsertMode, source: str,
                  cutoffs: dict[str, int], rollups: Sequence[RollupBucket], now: dt.datetime,
                  durable: bool = True) -> int:
    """The whole write of a batch, inside the caller's transaction: upsert `candles`
    under `mode`, close candles each symbol's cutoff (epoch ms) has passed, and
    recompute the `rollups` buckets from the 1m rows. Returns rows written.

    durable=False commits without waiting for the WAL flush (PostgreSQL): for the
    feed's batches every 250 ms the flush would be the most expensive step, and a
    database crash can then lose at most the last fraction of a second of candle
    updates, which the exchange's closed klines and the gap repair restore. Nothing
    else shares the transaction, so no other data is weakened."""
    ids = instrument_ids
    cutoffs_by_id = {ids[s]: c for s, c in cutoffs.items() if s in ids}
    rollups = [b for b in rollups if b.symbol in ids]
    if connection.vendor != "postgresql":
        written = candles_upsert(candles=candles, instrument_ids=ids, mode=mode, source=source, now=now)
        candles_close_until(cutoffs=cutoffs_by_id, now=now)
        return written + _rollups_in_python(rollups, ids, now)
    rows = [_row(c, ids[c.symbol], source, now) for c in candles if c.symbol in ids]
    if not rows:
        return 0
    with connection.cursor() as cursor:
        statements = [] if durable else [("SET LOCAL synchronous_commit TO OFF", [])]
        statements.append((f"{_stage_rows(cursor, rows)} {_conflict(mode)}", []))
        if cutoffs_by_id:
            statements.append(_close_sql(cutoffs_by_id, now))
        # One statement per base timeframe, in order: 4h/1d read the 1h rows the
        # statement before has just recomputed.
        rollup_steps = 0
        for base in ("1m", "1h"):
            wanted = [b for b in rollups if ROLLUP_BASE[b.timeframe] == base]
            if wanted:
                statements.append(_rollup_sql(wanted, ids, now, base))
                rollup_steps += 1
        counts = _execute_all(cursor, statements)
    merged = counts[0 if durable else 1]
    return merged + (sum(counts[-rollup_steps:]) if rollup_steps else 0)


def candles_close_until(*, cutoffs: dict[int, int], now: dt.datetime) -> int:
    """Mark closed every open candle of instrument id -> cutoff (epoch ms) whose
    bucket ends at or before the cutoff. Returns rows closed."""
    if not cutoffs:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(*_close_sql(cutoffs, now))
        return cursor.rowcount


_MINUTE_FIELDS = ("instrument_id", "open_time", "open", "high", "low", "close", "volume", "trades",
                  "first_trade_ms", "first_trade_id", "last_trade_ms", "last_trade_id", "closed")


def _rollups_in_python(buckets: Sequence[RollupBucket], ids: dict[str, int], now: dt.datetime) -> int:
    """SQLite: per base timeframe (1m, then 1h), fetch the base rows of the buckets'
    spans, roll them up with the pure functions, upsert the wanted buckets."""
    if not buckets:
        return 0
    from django.db.models import Q

    symbols = {v: k for k, v in ids.items()}
    wanted = {(b.symbol, b.timeframe, b.open_ms): b.closed for b in buckets}
    written = 0
    for base, span in (("1m", TIMEFRAME_MS["1h"]), ("1h", TIMEFRAME_MS["1d"])):
        mine = [b for b in buckets if ROLLUP_BASE[b.timeframe] == base]
        if not mine:
            continue
        condition = Q()
        for symbol, start in {(b.symbol, b.open_ms - b.open_ms % span) for b in mine}:
            condition |= Q(instrument_id=ids[symbol], open_time__gte=ms_to_dt(start),
                           open_time__lt=ms_to_dt(start + span))
        rows_in = [PartialCandle(symbols[r[0]], base, dt_to_ms(r[1]), *r[2:])
                   for r in Candle.objects.filter(condition, timeframe=base).values_list(*_MINUTE_FIELDS)]
        rows = []
        for timeframe in (tf for tf in ROLLUP_TIMEFRAMES if ROLLUP_BASE[tf] == base):
            for c in candles_rollup(rows_in, timeframe):
                closed = wanted.get((c.symbol, timeframe, c.open_ms))
                if closed is not None:
                    c.closed = closed
                    rows.append(c)
        written += candles_upsert(candles=rows, instrument_ids=ids, mode=UpsertMode.ROLLUP, source="rollup", now=now)
    return written
