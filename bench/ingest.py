"""Ingest benchmark: trades -> candles (1m, 5m, 15m, 1h) in PostgreSQL, one process.

Prints trades/s for:
  pipeline   pipeline.services.trades_ingest() fed batch by batch, as run_feed does
             (dedupe, aggregation, COPY + merge, closing, rollups, latest price in
             Redis), for each --batch size (run_feed flushes every 250 ms or 1,000
             trades, whichever comes first)
  copy-sql   baseline: COPY the same raw trades into a staging table, then one
             set-based SQL merge per timeframe computes every candle (the database
             does all the work)
  one-shot   baseline: the same pure aggregation over all trades at once, then COPY
             the final candle rows + ONE merge (our write path with a single batch)
  floor      COPY + ONE merge of the final candle rows alone, no aggregation (the
             cost of writing the result; not a trade pipeline, shown for scale)
  per-row    naive ORM: per trade and timeframe, SELECT ... FOR UPDATE then save();
             run on a smaller sample and extrapolated (labelled so)
Every path's candles are compared with the pipeline's, so a fast wrong answer fails.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/ingest.py --trades 500000 --batch 1000,12500,50000

The scratch database `bench_ingest` is created on the DATABASE_URL server and
migrated; its candle table is emptied before each run.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_MS = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000


def _scratch_db_url(base: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


def _setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ["CACHE_KEY_PREFIX"] = "bench_ingest"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from signals.services import demo_instruments_seed

    call_command("migrate", verbosity=0)
    demo_instruments_seed()


def make_trades(n: int, per_minute: int, seed: int):
    """A clean exchange tape: per-symbol increasing ids, time moving forward at about
    `per_minute` trades per minute per symbol, prices on a random walk."""
    from pipeline.market_data import Trade

    rng = random.Random(seed)
    ids = dict.fromkeys(SYMBOLS, 10_000_000)
    price = dict.fromkeys(SYMBOLS, 50_000_00)       # in cents
    step_ms = 60_000 / (per_minute * len(SYMBOLS))
    out = []
    ts = float(START_MS)
    for _ in range(n):
        ts += rng.random() * 2 * step_ms
        s = SYMBOLS[rng.randrange(len(SYMBOLS))]
        ids[s] += 1
        price[s] = max(100, price[s] + rng.randint(-300, 300))
        out.append(Trade(s, ids[s], Decimal(price[s]).scaleb(-2), Decimal(rng.randint(1, 200_000)).scaleb(-6),
                         int(ts)))
    return out


def _reset() -> None:
    from django.db import connection

    from pipeline.latest_prices import latest_price_forget

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE pipeline_candle")
    for s in SYMBOLS:
        latest_price_forget(symbol=s)


def _snapshot() -> list[tuple]:
    from pipeline.models import Candle

    return list(Candle.objects.order_by("instrument_id", "timeframe", "open_time").values_list(
        "instrument_id", "timeframe", "open_time", "open", "high", "low", "close", "volume", "trades"))


def run_pipeline(trades, batch: int) -> float:
    from pipeline.services import TradeDedupe, trades_ingest

    _reset()
    dedupe = TradeDedupe()  # a fresh feed process
    started = time.perf_counter()
    for i in range(0, len(trades), batch):
        trades_ingest(trades=trades[i:i + batch], dedupe=dedupe)
    return time.perf_counter() - started


_COPY_SQL_MERGE = """
INSERT INTO pipeline_candle (instrument_id, timeframe, open_time, open, high, low, close, volume, trades,
    first_trade_ms, first_trade_id, last_trade_ms, last_trade_id, closed, source, updated_at)
SELECT instrument_id, %(tf)s, to_timestamp(bucket / 1000.0),
    (array_agg(price ORDER BY ts_ms, trade_id))[1], max(price), min(price),
    (array_agg(price ORDER BY ts_ms DESC, trade_id DESC))[1], sum(qty), count(*),
    min(ts_ms), (array_agg(trade_id ORDER BY ts_ms, trade_id))[1],
    max(ts_ms), (array_agg(trade_id ORDER BY ts_ms DESC, trade_id DESC))[1],
    false, 'trades', now()
FROM (SELECT *, ts_ms - ts_ms %% %(size)s AS bucket FROM bench_trade_stage) t
GROUP BY instrument_id, bucket
ON CONFLICT (instrument_id, timeframe, open_time) DO UPDATE SET
    open = CASE WHEN (excluded.first_trade_ms, excluded.first_trade_id)
                   < (pipeline_candle.first_trade_ms, pipeline_candle.first_trade_id)
                THEN excluded.open ELSE pipeline_candle.open END,
    close = CASE WHEN (excluded.last_trade_ms, excluded.last_trade_id)
                   > (pipeline_candle.last_trade_ms, pipeline_candle.last_trade_id)
                 THEN excluded.close ELSE pipeline_candle.close END,
    high = GREATEST(pipeline_candle.high, excluded.high), low = LEAST(pipeline_candle.low, excluded.low),
    volume = pipeline_candle.volume + excluded.volume, trades = pipeline_candle.trades + excluded.trades
"""


def run_copy_sql(trades) -> float:
    """COPY raw trades, then let PostgreSQL aggregate every timeframe in one statement each."""
    from django.db import connection, transaction

    from pipeline.aggregation import TIMEFRAME_MS
    from signals.models import Instrument

    _reset()
    ids = dict(Instrument.objects.filter(symbol__in=SYMBOLS).values_list("symbol", "id"))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_trade_stage (instrument_id bigint, trade_id bigint, "
                       "price numeric, qty numeric, ts_ms bigint)")
        cursor.execute("TRUNCATE bench_trade_stage")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy("COPY bench_trade_stage FROM STDIN") as copy:
            for t in trades:
                copy.write_row((ids[t.symbol], t.trade_id, t.price, t.qty, t.ts_ms))
        for timeframe, size in TIMEFRAME_MS.items():
            cursor.execute(_COPY_SQL_MERGE, {"tf": timeframe, "size": size})
    return time.perf_counter() - started


def _final_rows(trades):
    from pipeline.aggregation import ROLLUP_TIMEFRAMES, batch_cutoffs, candles_from_trades, candles_rollup

    minutes = candles_from_trades(trades)
    cutoffs = batch_cutoffs(trades)
    rows = list(minutes)
    for timeframe in ROLLUP_TIMEFRAMES:
        rows.extend(candles_rollup(minutes, timeframe, cutoffs=cutoffs))
    return rows


def _write_once(rows) -> None:
    from django.db import transaction
    from django.utils import timezone

    from pipeline.candle_sql import UpsertMode, candles_upsert
    from signals.models import Instrument

    ids = dict(Instrument.objects.filter(symbol__in=SYMBOLS).values_list("symbol", "id"))
    with transaction.atomic():
        candles_upsert(candles=rows, instrument_ids=ids, mode=UpsertMode.MERGE, source="trades", now=timezone.now())


def run_one_shot(trades) -> float:
    _reset()
    started = time.perf_counter()
    _write_once(_final_rows(trades))
    return time.perf_counter() - started


def run_floor(trades) -> float:
    rows = _final_rows(trades)
    _reset()
    started = time.perf_counter()
    _write_once(rows)
    return time.perf_counter() - started


def run_per_row(trades) -> float:
    """The naive ORM way: every trade updates four candle rows with save()."""
    from django.db import transaction
    from django.utils import timezone

    from pipeline.aggregation import TIMEFRAME_MS, bucket_start
    from pipeline.aggregation import ms_to_dt
    from pipeline.models import Candle
    from signals.models import Instrument

    _reset()
    ids = dict(Instrument.objects.filter(symbol__in=SYMBOLS).values_list("symbol", "id"))
    started = time.perf_counter()
    for t in trades:
        with transaction.atomic():
            for timeframe in TIMEFRAME_MS:
                open_time = ms_to_dt(bucket_start(t.ts_ms, timeframe))
                c = Candle.objects.select_for_update().filter(
                    instrument_id=ids[t.symbol], timeframe=timeframe, open_time=open_time).first()
                key = (t.ts_ms, t.trade_id)
                if c is None:
                    c = Candle(instrument_id=ids[t.symbol], timeframe=timeframe, open_time=open_time, open=t.price,
                               high=t.price, low=t.price, close=t.price, volume=t.qty, trades=1,
                               first_trade_ms=t.ts_ms, first_trade_id=t.trade_id, last_trade_ms=t.ts_ms,
                               last_trade_id=t.trade_id, updated_at=timezone.now())
                else:
                    c.high, c.low = max(c.high, t.price), min(c.low, t.price)
                    c.volume += t.qty
                    c.trades += 1
                    if key < (c.first_trade_ms, c.first_trade_id):
                        c.open, c.first_trade_ms, c.first_trade_id = t.price, t.ts_ms, t.trade_id
                    if key > (c.last_trade_ms, c.last_trade_id):
                        c.close, c.last_trade_ms, c.last_trade_id = t.price, t.ts_ms, t.trade_id
                    c.updated_at = timezone.now()
                c.save()
    return time.perf_counter() - started


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return a == b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=500_000, help="trades to push (default 500,000)")
    parser.add_argument("--batch", default="1000,12500",
                        help="trades per trades_ingest() call, comma-separated sizes to compare (default 1000 = "
                             "run_feed's cap per flush, 12500 = one 250 ms flush at 50,000 trades/s)")
    parser.add_argument("--per-minute", type=int, default=1500, help="trades per minute per symbol (default 1500)")
    parser.add_argument("--per-row-sample", type=int, default=2000, help="trades for the per-row save() run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; the best is reported (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="bench_ingest")
    args = parser.parse_args()
    try:
        sizes = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch: '{args.batch}' is not a comma-separated list of integers")
    if args.trades < 1000 or not sizes or min(sizes) < 1 or args.per_row_sample < 10:
        parser.error("--trades must be >= 1000, --batch sizes >= 1, --per-row-sample >= 10")

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at PostgreSQL")
    _setup_django(_scratch_db_url(base, args.database))
    from django.db import connection

    trades = make_trades(args.trades, args.per_minute, args.seed)
    n = len(trades)
    pg_version = connection.cursor().connection.info.server_version

    paths = [(f"pipeline@{b}", lambda b=b: run_pipeline(trades, b)) for b in sizes]
    paths += [("copy-sql", lambda: run_copy_sql(trades)), ("one-shot", lambda: run_one_shot(trades)),
              ("floor", lambda: run_floor(trades))]
    best: dict[str, float] = {}
    reference = None
    for name, run in paths:
        best[name] = min(run() for _ in range(args.repeat))
        if reference is None:
            reference = _snapshot()
        elif not _same(_snapshot(), reference):
            print(f"ERROR: {name} produced different candles than the pipeline", file=sys.stderr)
            return 1
    sample = trades[: args.per_row_sample]
    per_row_rate = len(sample) / run_per_row(sample)
    if not _same(_snapshot(), (run_pipeline(sample, sizes[0]), _snapshot())[1]):
        print("ERROR: per-row save() produced different candles than the pipeline", file=sys.stderr)
        return 1

    rows = len(reference)
    minutes = sum(1 for r in reference if r[1] == "1m")
    rate = {k: n / v for k, v in best.items()}
    main_rate = rate[f"pipeline@{sizes[0]}"]
    print(f"ingest bench: {n:,} trades, {len(SYMBOLS)} symbols, ~{args.per_minute:,}/min/symbol -> "
          f"{rows:,} candle rows ({minutes:,} x 1m); best of {args.repeat} runs per path")
    print(f"python {platform.python_version()}, PostgreSQL {pg_version // 10000}.{pg_version % 10000}, "
          f"{os.cpu_count()} CPUs; ratios are against the first pipeline row")
    for b in sizes:
        key = f"pipeline@{b}"
        print(f"  {'pipeline: trades_ingest, batches of ' + format(b, ','):46s} {best[key]:8.3f} s "
              f"{rate[key]:>12,.0f} trades/s")
    for key, label in (("copy-sql", "baseline: COPY trades + one SQL merge"),
                       ("one-shot", "baseline: aggregate once + COPY + one merge"),
                       ("floor", "floor: COPY + one merge of final rows only")):
        print(f"  {label:46s} {best[key]:8.3f} s {rate[key]:>12,.0f} trades/s   "
              f"pipeline = {main_rate / rate[key]:.2f}x")
    print(f"  {'per-row save() (' + format(len(sample), ',') + ' trades, extrapolated)':46s} "
          f"{n / per_row_rate:8.1f} s {per_row_rate:>12,.0f} trades/s   pipeline = {main_rate / per_row_rate:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
