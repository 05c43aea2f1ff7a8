"""Outcome tracking benchmark: trades/s through the tracker's trade path with 10,000
open signals, in one process.

Prints trades/s for:
  single     every signal one target, fixed stop (the contract's original rule)
  ladder     every signal three targets and a stop rule (breakeven after target 1,
             trail_targets, or trailing by percent, in turn), issue 11's case:
             target within 2x of `single`
  naive      baseline measured in the same run: the engine applied to every open
             signal of the symbol on every trade (no watch-band index), on a sample
             of the tape and extrapolated (labelled so)
and each figure's ratio to the feed's ingest rate (trades/s that run_feed turns
into candles; bench/ingest.py measures it, BENCHMARKS.md records it; pass the
figure of your machine with --ingest-rate).

The tape is a seeded random walk of 3 symbols (about 0.2 bp per trade, the
per-trade volatility of BTCUSDT); signals are spread over the symbols with levels
0.5 % to 2 % steps away from the price at their creation, and every signal the tape closes is
replaced by a new one at the current price, so 10,000 stay open throughout (the
replacements go through OutcomeBook.replay + add, as a new signal does live).

    .venv/bin/python bench/outcomes.py --signals 10000 --trades 300000 --repeat 5

The book is pure Python; its figures are CPU seconds of this process (best of
--repeat, the two paths interleaved), since wall time on a shared machine mostly
measures waiting for a core. Persistence happens only for signals that changed (their
number is printed beside each figure); with --persist N (and DATABASE_URL /
REDIS_URL) the script also times N such writes through
`pipeline.outcomes.services.outcome_progress_save_many` (signal_outcome_progress: row
lock, update, outcome broadcast on commit; one commit per 50 as the tracker
batches a cycle's changes) in the scratch database `bench_outcomes`
and prints each path's rate with its writes included:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/outcomes.py --persist 1000
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.outcomes.book import OutcomeBook, Tracked, at_of  # noqa: E402
from pipeline.outcomes.engine import apply_trade, levels_build, state_new  # noqa: E402

SYMBOLS = {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000"), "SOLUSDT": Decimal("150")}
START_MS = 1_795_000_000_000
RULES = ({"type": "breakeven", "after_target": 1}, {"type": "trail_targets"},
         {"type": "trailing", "distance_pct": "1"})
# Changes written per tracker cycle in the persistence figure (one transaction each).
PERSIST_BATCH = 50
# Ingest rate of run_feed's batches of 1,000 in BENCHMARKS.md (bench/ingest.py).
RECORDED_INGEST_RATE = 142_851


def tape(n: int, seed: int) -> list[tuple[str, int, Decimal]]:
    rng = random.Random(seed)
    price = {s: float(p) for s, p in SYMBOLS.items()}
    names = list(SYMBOLS)
    out = []
    for i in range(n):
        symbol = names[i % 3]
        price[symbol] *= 1 + rng.gauss(0, 2e-5)
        out.append((symbol, START_MS + i, Decimal(f"{price[symbol]:.2f}")))
    return out


def make_signal(rng: random.Random, sid: int, symbol: str, price: Decimal, at_ms: int, ladder: bool) -> Tracked:
    direction = rng.choice(("long", "short"))
    sign = 1 if direction == "long" else -1
    step = Decimal(str(round(rng.uniform(0.005, 0.02), 4))) * price
    entry = price
    stop = (entry - sign * step).quantize(Decimal("0.01"))
    if ladder:
        targets = [{"price": str((entry + sign * step * k).quantize(Decimal("0.01"))), "portion": p}
                   for k, p in ((1, "0.5"), (2, "0.3"), (3, "0.2"))]
        rule = RULES[sid % len(RULES)]
    else:
        targets, rule = [{"price": str((entry + sign * step * 2).quantize(Decimal("0.01"))), "portion": "1"}], None
    levels = levels_build(direction=direction, entry=entry, stop=stop, targets=targets, stop_rule=rule,
                          created_at=at_of(at_ms))
    return Tracked(signal_id=sid, symbol=symbol, levels=levels, state=state_new(levels))


def run_book(trades, *, signals: int, ladder: bool, seed: int) -> dict:
    rng = random.Random(seed)
    book = OutcomeBook()
    names = list(SYMBOLS)
    for sid in range(signals):
        symbol = names[sid % 3]
        book.add(make_signal(rng, sid, symbol, SYMBOLS[symbol], START_MS - 1, ladder))
    next_id, writes, decided = signals, 0, 0
    # CPU time of this process: the machine is shared, and wall time would mostly
    # measure how long others kept the core (the book is single-threaded CPU work).
    started = time.process_time()
    for symbol, ts, price in trades:
        book.apply_trade(symbol, ts, price)
        if book.dirty:
            for tracked in book.take_dirty():
                writes += 1
                if tracked.state.status != "open":
                    decided += 1
                    # A new signal replaces it, so the open count stays constant.
                    fresh = make_signal(rng, next_id, symbol, price, ts, ladder)
                    next_id += 1
                    book.replay(fresh)
                    book.add(fresh)
    elapsed = time.process_time() - started
    return {"elapsed": elapsed, "rate": len(trades) / elapsed, "writes": writes, "decided": decided,
            "open": sum(1 for t in book.tracked.values() if t.state.status == "open")}


def run_naive(trades, *, signals: int, ladder: bool, seed: int) -> dict:
    rng = random.Random(seed)
    names = list(SYMBOLS)
    by_symbol: dict[str, list[Tracked]] = {s: [] for s in names}
    for sid in range(signals):
        symbol = names[sid % 3]
        by_symbol[symbol].append(make_signal(rng, sid, symbol, SYMBOLS[symbol], START_MS - 1, ladder))
    started = time.process_time()
    for symbol, ts, price in trades:
        at = at_of(ts)
        for tracked in by_symbol[symbol]:
            apply_trade(tracked.levels, tracked.state, price=price, at=at)
    elapsed = time.process_time() - started
    return {"elapsed": elapsed, "rate": len(trades) / elapsed}


def persist_rate(count: int) -> float:
    """Writes/s of leg-hit progress through the real service, on `count` fresh signals."""
    from ingest import _scratch_db_url, _setup_django

    _setup_django(_scratch_db_url(os.environ["DATABASE_URL"], "bench_outcomes"))
    from django.utils import timezone

    from pipeline.outcomes.selectors import outcomes_open
    from pipeline.outcomes.services import outcome_progress_save_many
    from signals.services import signal_create

    first = None
    for i in range(count):
        signal = signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                               take_profit="130", confidence=50, source="bench-outcomes",
                               targets=[{"price": "110", "portion": "0.5"}, {"price": "130", "portion": "0.5"}],
                               stop_rule={"type": "breakeven", "after_target": 1}).signal
        first = first or signal.id
    tracked = outcomes_open(after_signal_id=first - 1)
    now = timezone.now() + dt.timedelta(seconds=1)
    for item in tracked:
        apply_trade(item.levels, item.state, price=Decimal("111"), at=now)
    started = time.perf_counter()
    for i in range(0, len(tracked), PERSIST_BATCH):
        outcome_progress_save_many([(item, None) for item in tracked[i:i + PERSIST_BATCH]])
    return len(tracked) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=300_000)
    parser.add_argument("--naive-trades", type=int, default=300, help="sample for the naive baseline")
    parser.add_argument("--ingest-rate", type=float, default=RECORDED_INGEST_RATE,
                        help="run_feed's ingest rate (trades/s) to compare with")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per path")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--persist", type=int, default=0, help="also time N outcome writes (needs DATABASE_URL)")
    args = parser.parse_args()

    trades = tape(args.trades, args.seed)
    print(f"outcome tracking: {args.signals:,} open signals on {len(SYMBOLS)} symbols, {args.trades:,} trades "
          f"(Python {platform.python_version()}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    runs: dict[str, list[dict]] = {"single": [], "ladder": []}
    for _ in range(args.repeat):   # interleaved, so a change in the machine's load hits both
        for name, ladder in (("single", False), ("ladder", True)):
            runs[name].append(run_book(trades, signals=args.signals, ladder=ladder, seed=args.seed))
    results = {}
    for name in runs:
        results[name] = best = min(runs[name], key=lambda r: r["elapsed"])
        print(f"  {name:7s} {best['rate']:>12,.0f} trades/s  ({best['elapsed']:.2f} s; {best['writes']:,} changes "
              f"to persist, {best['decided']:,} decided, {best['open']:,} open at the end)  "
              f"= {best['rate'] / args.ingest_rate:.2f}x the ingest rate")
    for name, ladder in (("single", False), ("ladder", True)):
        naive = run_naive(trades[: args.naive_trades], signals=args.signals, ladder=ladder, seed=args.seed)
        print(f"  naive {name:7s} {naive['rate']:>8,.0f} trades/s  (sample of {args.naive_trades} trades, "
              f"extrapolated)  indexed book = {results[name]['rate'] / naive['rate']:,.0f}x faster")
    if args.persist:
        writes = persist_rate(args.persist)
        print(f"  persistence: {writes:,.0f} outcome writes/s (signal_outcome_progress, {args.persist:,} leg hits)")
        for name, r in results.items():
            total = r["elapsed"] + r["writes"] / writes
            print(f"  {name:7s} with its {r['writes']:,} writes: {args.trades / total:>10,.0f} trades/s "
                  f"({args.trades / total / args.ingest_rate:.2f}x the ingest rate)")
    ratio = results["single"]["rate"] / results["ladder"]["rate"]
    print(f"ladders + rules cost {ratio:.2f}x the single-target time per trade (target <= 2x)")
    print(f"slowest path vs the feed's ingest rate ({args.ingest_rate:,.0f} trades/s): "
          f"{min(r['rate'] for r in results.values()) / args.ingest_rate:.2f}x")


if __name__ == "__main__":
    main()
