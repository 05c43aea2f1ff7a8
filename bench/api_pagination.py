"""API pagination benchmark: a 50-row page at depth 0 and at depth ~1,000,000.

Why: signals are kept forever, so the table only grows. The list endpoint uses
cursor pagination (`WHERE id < cursor ORDER BY id DESC LIMIT 51`, one index range
scan) precisely so that the millionth page costs what the first one does; OFFSET
pagination would walk and discard every earlier row. This prints both, with p50/p95
over repeated fetches, and the two ratios the design promises:
  deep cursor / shallow cursor  <= 1.5
  deep cursor / deep OFFSET     <= 0.1

Cursor pages go through the real API in-process (DRF APIClient, token auth,
GET /api/signals/?cursor=...); OFFSET pages are ORM slices of the same selector
rendered through the same serializer and JSON renderer (no HTTP stack, so OFFSET is,
if anything, flattered).

The scratch database `bench_pagination` is created on DATABASE_URL's server and
filled once with COPY (instruments through the ORM); later runs reuse it. --refill
drops and rebuilds it (signals are permanent: the triggers refuse TRUNCATE, so the
only way to empty it is to drop the whole scratch database). --drop removes it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/api_pagination.py --rows 1000000
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE = 50
SYMBOLS = (("BTCUSDT", "crypto", 65000), ("ETHUSDT", "crypto", 3000), ("SOLUSDT", "crypto", 150),
           ("USDCOP", "forex", 4000))
SOURCES = ("manual", "ema_cross", "rsi_reversal", "macd_momentum", "bollinger_breakout")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="signals in the scratch table")
    parser.add_argument("--database", default="bench_pagination", help="scratch database name")
    parser.add_argument("--samples", type=int, default=40, help="timed fetches per cursor case")
    parser.add_argument("--offset-samples", type=int, default=15, help="timed fetches of the OFFSET case")
    parser.add_argument("--refill", action="store_true", help="drop and refill the scratch database")
    parser.add_argument("--drop", action="store_true", help="drop the scratch database and exit")
    return parser.parse_args()


# --- scratch database ---------------------------------------------------------------------

def _server_urls(database: str) -> tuple[str, str]:
    """(maintenance URL, scratch URL) on DATABASE_URL's server."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(base)
    if parsed.scheme not in ("postgres", "postgresql"):
        sys.exit("DATABASE_URL must point at PostgreSQL (postgres://...): this benchmark needs COPY.")
    return parsed._replace(path="/postgres").geturl(), parsed._replace(path=f"/{database}").geturl()


def _admin(maintenance_url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def _quoted(database: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        sys.exit("--database: use lower-case letters, digits and underscores")
    return f'"{database}"'


def _ensure_database(maintenance_url: str, database: str, *, drop_first: bool) -> None:
    name = _quoted(database)
    if drop_first:
        _admin(maintenance_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    exists = _admin(maintenance_url, f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    if not exists:
        _admin(maintenance_url, f"CREATE DATABASE {name}")


# --- fill ---------------------------------------------------------------------------------------

_INSTRUMENT_IDS: dict[str, int] = {}  # symbol -> id, filled by _fill before any line is written


def _signal_lines(first_id: int, count: int, start: dt.datetime):
    """Text COPY lines for signals [first_id, first_id + count) and their outcomes."""
    signals, outcomes = io.StringIO(), io.StringIO()
    for i in range(first_id, first_id + count):
        symbol, market, price = SYMBOLS[i % len(SYMBOLS)]
        instrument_id = _INSTRUMENT_IDS[symbol]
        entry = price + (i % 97)
        if i % 2:
            direction, stop, take = "short", entry * 1.01, entry * 0.97
        else:
            direction, stop, take = "long", entry * 0.99, entry * 1.03
        created = (start + dt.timedelta(seconds=i)).isoformat()
        # One target (the take-profit) and a fixed stop: what signal_create stores by default.
        targets = f'[{{"price": "{take:.4f}", "portion": "1"}}]'
        signals.write(f"{i}\t{instrument_id}\t{symbol}\t{market}\t{direction}\t{entry}\t{stop:.4f}\t{take:.4f}\t"
                      f"{i % 101}\t1h\t{SOURCES[i % len(SOURCES)]}\t\t{created}\t\\N\t\\N\t"
                      f"{targets}\t{{\"type\": \"fixed\"}}\n")
        outcomes.write(f"{i}\topen\t\\N\t\\N\t\\N\t[]\t{{}}\n")
    return signals.getvalue(), outcomes.getvalue()



def _fill(rows: int) -> None:
    from django.db import connection
    from tqdm import tqdm

    from signals.services import demo_instruments_seed

    _INSTRUMENT_IDS.update({i.symbol: i.id for i in demo_instruments_seed()})
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    chunk = 50_000
    signal_cols = ("id, instrument_id, symbol, market, direction, entry_price, stop_loss, take_profit, "
                   "confidence, timeframe, source, note, created_at, expires_at, created_by_id, targets, stop_rule")
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection, for COPY
    with tqdm(total=rows, unit="signal", desc="COPY signals") as bar:
        for first in range(1, rows + 1, chunk):
            count = min(chunk, rows + 1 - first)
            signal_text, outcome_text = _signal_lines(first, count, start)
            with raw.transaction(), raw.cursor() as cur:
                with cur.copy(f"COPY signals_signal ({signal_cols}) FROM STDIN") as copy:
                    copy.write(signal_text)
                with cur.copy("COPY signals_signaloutcome (signal_id, status, closed_at, exit_price, r_multiple, legs, state) "
                              "FROM STDIN") as copy:
                    copy.write(outcome_text)
            bar.update(count)
    with connection.cursor() as cur:
        cur.execute("SELECT setval(pg_get_serial_sequence('signals_signal', 'id'), (SELECT max(id) FROM signals_signal))")
    # Fresh statistics and visibility map, as autovacuum would eventually provide.
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE signals_signal")
        cur.execute("VACUUM ANALYZE signals_signaloutcome")


# --- timing -------------------------------------------------------------------------------------

def _timed(fn, samples: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cursor_for_position(position: int) -> str:
    """DRF's CursorPagination cursor: base64 of the query string "p=<last id seen>"."""
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


def _measure(rows: int, samples: int, offset_samples: int) -> dict:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.renderers import JSONRenderer
    from rest_framework.test import APIClient

    from signals.api.serializers import SignalSerializer
    from signals.selectors import signal_list

    user, _ = get_user_model().objects.get_or_create(username="bench-reader")
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    first = client.get(f"/api/signals/?page_size={PAGE}")
    assert first.status_code == 200, first.content
    first_body = first.json()
    newest_id = first_body["results"][0]["id"]
    # Check we build cursors exactly as DRF does: page 2 from our cursor == `next`.
    drf_cursor = parse_qs(urlparse(first_body["next"]).query)["cursor"][0]
    assert base64.b64decode(drf_cursor).decode() == f"p={first_body['results'][-1]['id']}", drf_cursor

    depth = rows - PAGE  # rows skipped before the deep page: the last page of the table
    deep_position = newest_id - depth + 1  # ids are dense (COPY wrote 1..rows)
    deep_url = f"/api/signals/?page_size={PAGE}&cursor={_cursor_for_position(deep_position)}"
    deep_ids = [r["id"] for r in client.get(deep_url).json()["results"]]

    def offset_page() -> bytes:
        page = list(signal_list()[depth:depth + PAGE])
        return JSONRenderer().render(SignalSerializer(page, many=True).data)

    offset_ids = [r["id"] for r in json.loads(offset_page())]
    assert deep_ids == offset_ids and len(deep_ids) == PAGE, (deep_ids[:3], offset_ids[:3])

    def api_get(url: str):
        def fetch() -> None:
            response = client.get(url)
            assert response.status_code == 200
        return fetch

    shallow = _timed(api_get(f"/api/signals/?page_size={PAGE}"), samples)
    deep = _timed(api_get(deep_url), samples)
    offset = _timed(offset_page, offset_samples, warmup=1)
    return {"depth": depth, "shallow": shallow, "deep": deep, "offset": offset}


def scratch_database_open(args: argparse.Namespace, fill, after_fill=None) -> bool:
    """Drop the scratch database (`--drop`: returns False), or create it as needed, set
    Django up on it, migrate, and `fill(rows)` it when empty (then `after_fill()`).
    Exits when it holds another number of rows. Shared by the benchmarks that need a
    database of `args.rows` signals."""
    maintenance_url, scratch_url = _server_urls(args.database)
    if args.drop:
        _admin(maintenance_url, f"DROP DATABASE IF EXISTS {_quoted(args.database)} WITH (FORCE)")
        print(f"dropped {args.database}")
        return False
    _ensure_database(maintenance_url, args.database, drop_first=args.refill)

    os.environ["DATABASE_URL"] = scratch_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from signals.models import Signal

    call_command("migrate", verbosity=0, interactive=False)
    present = Signal.objects.count()
    if present == 0:
        t0 = time.perf_counter()
        fill(args.rows)
        print(f"filled {args.rows:,} signals + outcomes in {time.perf_counter() - t0:.1f} s")
        if after_fill is not None:
            after_fill()
    elif present != args.rows:
        sys.exit(f"{args.database} holds {present:,} signals, not {args.rows:,}: rerun with --refill")
    else:
        print(f"reusing {args.database}: {present:,} signals (--refill to rebuild)")
    return True


def main() -> None:
    args = _parse_args()
    if not scratch_database_open(args, _fill):
        return

    result = _measure(args.rows, args.samples, args.offset_samples)
    shallow, deep, offset = result["shallow"], result["deep"], result["offset"]
    p50 = {k: statistics.median(v) for k, v in (("shallow", shallow), ("deep", deep), ("offset", offset))}
    print(f"\n{PAGE}-row page, {args.rows:,} signals, deep page = rows {result['depth']:,}..{args.rows - 1:,}"
          f" from the newest")
    print(f"{'case':<34}{'p50 ms':>10}{'p95 ms':>10}{'samples':>9}")
    for label, values in (("API cursor, depth 0", shallow),
                          (f"API cursor, depth {result['depth']:,}", deep),
                          (f"ORM OFFSET {result['depth']:,} + serializer", offset)):
        print(f"{label:<34}{_p(values, 0.5):>10.2f}{_p(values, 0.95):>10.2f}{len(values):>9}")
    deep_shallow = p50["deep"] / p50["shallow"]
    deep_offset = p50["deep"] / p50["offset"]
    print(f"\ndeep / shallow cursor (p50): {deep_shallow:.2f}  (target <= 1.5) "
          f"{'OK' if deep_shallow <= 1.5 else 'MISSED'}")
    print(f"deep cursor / OFFSET  (p50): {deep_offset:.3f} (target <= 0.1) "
          f"{'OK' if deep_offset <= 0.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
