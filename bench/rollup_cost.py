"""What the 4h/1d rollup adds to one feed flush (PostgreSQL).

Times `pipeline.candle_sql.candles_write` for 1,000-trade batches of one symbol on top
of ~10 hours of stored history, alternating between the full write (1m merge, closing,
5m/15m/1h rolled up from 1m rows, 4h/1d from 1h rows) and the same write without the
4h/1d buckets (what the write was before they existed). Alternating batches keep a
loaded machine's noise out of the difference; medians and first quartiles are printed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/rollup_cost.py

Uses (and empties the candles of) the scratch database `bench_ingest`, like bench/ingest.py.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import _scratch_db_url, _setup_django  # noqa: E402

DAY_MS = 86_400_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=400, help="timed batches (half each way)")
    parser.add_argument("--history", type=int, default=600, help="untimed batches stored first")
    parser.add_argument("--database", default="bench_ingest")
    args = parser.parse_args()
    _setup_django(_scratch_db_url(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                                  args.database))
    from django.db import transaction
    from django.utils import timezone

    from pipeline import candle_sql
    from pipeline.aggregation import batch_cutoffs, candles_from_trades, rollup_buckets
    from pipeline.models import Candle
    from pipeline.market_data import Trade

    Candle.objects.all().delete()
    rng = random.Random(1)
    tape = {"ts": 1_795_000_000_000 - 1_795_000_000_000 % DAY_MS, "id": 0, "price": Decimal(100)}

    def batch(n: int) -> list[Trade]:
        out = []
        for _ in range(n):
            tape["ts"] += rng.randint(0, 80)
            tape["id"] += 1
            tape["price"] = max(Decimal(1), tape["price"] + Decimal(rng.randint(-40, 40)) / 100)
            out.append(Trade("BTCUSDT", tape["id"], tape["price"], Decimal(1), tape["ts"]))
        return out

    def write(trades: list[Trade], long_rollups: bool) -> float:
        minutes, cutoffs = candles_from_trades(trades), batch_cutoffs(trades)
        rollups = rollup_buckets(((c.symbol, c.open_ms) for c in minutes), cutoffs)
        if not long_rollups:
            rollups = [b for b in rollups if b.timeframe not in ("4h", "1d")]
        with transaction.atomic():
            ids = candle_sql.instruments_lock(symbols={"BTCUSDT"})
            start = time.perf_counter()
            candle_sql.candles_write(candles=minutes, instrument_ids=ids, mode=candle_sql.UpsertMode.MERGE,
                                     source="trades", cutoffs=cutoffs, rollups=rollups, now=timezone.now(),
                                     durable=False)
            return time.perf_counter() - start

    for _ in range(args.history):
        write(batch(1000), True)
    timings: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.batches):
        timings[i % 2 == 1].append(write(batch(1000), i % 2 == 1))
    print(f"load {os.getloadavg()[0]:.2f}; {args.batches // 2} batches of 1,000 trades each way")
    for label, key in (("without 4h/1d (before)", False), ("with 4h/1d (now)", True)):
        values = timings[key]
        print(f"  {label:<24} median {statistics.median(values) * 1e3:.3f} ms   "
              f"p25 {statistics.quantiles(values, n=4)[0] * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
