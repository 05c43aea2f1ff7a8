"""Statistics benchmark: GET /api/stats/?days=30 over a million signals.

Why: per-source figures (win rate, average R, legs, excursions; all time and the
last N days) are read from summary tables that every write keeps current
(signals.services.stats), so a request should cost the same at a million signals
as at a hundred. This prints the summary read (the function the view calls, and
the whole API request in-process) beside the baseline it replaces: the same
figures aggregated from the signals and outcomes tables on every request, measured
in the same run, and their ratio. It also times the one-off rebuild (what the
migration runs once on an existing database).

The scratch database `bench_stats` on DATABASE_URL's server is filled once with
COPY (about 70% of the signals closed, with R, MFE and MAE); later runs reuse it.
--refill rebuilds it, --drop removes it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/stats.py --rows 1000000
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_pagination import SOURCES, SYMBOLS, _p, _timed, scratch_database_open  # noqa: E402


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="signals in the scratch table")
    parser.add_argument("--database", default="bench_stats", help="scratch database name")
    parser.add_argument("--samples", type=int, default=30, help="timed reads per case")
    parser.add_argument("--baseline-samples", type=int, default=5, help="timed reads of the baseline")
    parser.add_argument("--refill", action="store_true", help="drop and refill the scratch database")
    parser.add_argument("--drop", action="store_true", help="drop the scratch database and exit")
    return parser.parse_args()


def _lines(first_id: int, count: int, now: dt.datetime, instrument_ids: dict[str, int]) -> tuple[str, str]:
    """COPY text for signals [first_id, first_id + count) over the last ~2 years, and
    their outcomes: 3 in 10 open, the rest tp_hit / sl_hit / expired with an R."""
    signals, outcomes = io.StringIO(), io.StringIO()
    for i in range(first_id, first_id + count):
        symbol, market, price = SYMBOLS[i % len(SYMBOLS)]
        created = now - dt.timedelta(seconds=60 * (i % 1_000_000))
        signals.write(f"{i}\t{instrument_ids[symbol]}\t{symbol}\t{market}\tlong\t{price}\t{price * 0.99:.4f}\t"
                      f"{price * 1.02:.4f}\t{i % 101}\t1h\t{SOURCES[i % len(SOURCES)]}\t\t{created.isoformat()}\t"
                      "[]\t{\"type\": \"fixed\"}\n")
        kind = i % 10
        if kind < 3:
            outcomes.write(f"{i}\topen\t\\N\t\\N\t\\N\t[]\t{{}}\t\\N\t\\N\n")
            continue
        status, r = (("tp_hit", "2"), ("sl_hit", "-1"), ("expired", "0.3"))[kind % 3]
        outcomes.write(f"{i}\t{status}\t{created.isoformat()}\t{price}\t{r}\t[]\t{{}}\t{(i % 30) / 10}\t"
                       f"{(i % 12) / 10}\n")
    return signals.getvalue(), outcomes.getvalue()


def _fill(rows: int) -> None:
    from django.db import connection
    from django.utils import timezone
    from tqdm import tqdm

    from signals.services import demo_instruments_seed

    instrument_ids = {i.symbol: i.id for i in demo_instruments_seed()}
    now = timezone.now()
    signal_cols = ("id, instrument_id, symbol, market, direction, entry_price, stop_loss, take_profit, confidence, "
                   "timeframe, source, note, created_at, targets, stop_rule")
    outcome_cols = "signal_id, status, closed_at, exit_price, r_multiple, legs, state, mfe_r, mae_r"
    connection.ensure_connection()
    raw = connection.connection
    chunk = 50_000
    with tqdm(total=rows, unit="signal", desc="COPY signals") as bar:
        for first in range(1, rows + 1, chunk):
            count = min(chunk, rows + 1 - first)
            signal_text, outcome_text = _lines(first, count, now, instrument_ids)
            with raw.transaction(), raw.cursor() as cur:
                with cur.copy(f"COPY signals_signal ({signal_cols}) FROM STDIN") as copy:
                    copy.write(signal_text)
                with cur.copy(f"COPY signals_signaloutcome ({outcome_cols}) FROM STDIN") as copy:
                    copy.write(outcome_text)
            bar.update(count)
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE signals_signal")
        cur.execute("VACUUM ANALYZE signals_signaloutcome")


def _baseline(days: int):
    """The figures aggregated from the signals on every request (what the summary replaces)."""
    from django.db.models import Avg, Count, Q
    from django.utils import timezone

    from signals.models import Signal

    closed = ~Q(outcome__status__in=["open", "cancelled"])
    since = timezone.now() - dt.timedelta(days=days)

    def _figures(qs):
        return list(qs.values("source").annotate(
            signals=Count("id"), closed=Count("id", filter=closed),
            wins=Count("id", filter=closed & Q(outcome__r_multiple__gt=0)),
            losses=Count("id", filter=closed & Q(outcome__r_multiple__lt=0)),
            avg_r=Avg("outcome__r_multiple", filter=closed), mfe=Avg("outcome__mfe_r", filter=closed),
            mae=Avg("outcome__mae_r", filter=closed)).order_by("source"))

    return _figures(Signal.objects.all()), _figures(Signal.objects.filter(created_at__gte=since))


def _rebuild_once() -> None:
    from signals.services.stats import stats_rebuild

    t0 = time.perf_counter()
    stats_rebuild()
    print(f"stats_rebuild (one pass, what the migration runs once): {time.perf_counter() - t0:.1f} s")


def main() -> None:
    args = _parse_args()
    if not scratch_database_open(args, _fill, after_fill=_rebuild_once):
        return
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from signals.stats import stats_report

    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    client = APIClient()
    client.force_authenticate(staff)
    assert client.get("/api/stats/?days=30").status_code == 200
    summary = _timed(lambda: stats_report(days=30, market_updates={}), args.samples)
    request = _timed(lambda: client.get("/api/stats/?days=30"), args.samples)
    baseline = _timed(lambda: _baseline(30), args.baseline_samples, warmup=1)
    print(f"\n/api/stats/?days=30 figures over {args.rows:,} signals ({len(SOURCES)} sources)")
    print(f"{'case':<48}{'p50 ms':>10}{'p95 ms':>10}{'samples':>9}")
    for label, values in (("summary tables (signals.stats.stats_report)", summary),
                          ("GET /api/stats/?days=30 in-process (+24 h counts)", request),
                          ("baseline: aggregate signals per request", baseline)):
        print(f"{label:<48}{_p(values, 0.5):>10.2f}{_p(values, 0.95):>10.2f}{len(values):>9}")
    ratio = statistics.median(summary) / statistics.median(baseline)
    print(f"\nsummary / baseline (p50): {ratio:.4f}")


if __name__ == "__main__":
    main()
