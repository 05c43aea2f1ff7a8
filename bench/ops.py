"""Operator endpoints under load: /health/ and /metrics p50/p95/p99 on a real daphne.

C concurrent keep-alive HTTP clients hammer one path for D seconds each; the same
run measures /health/live/ (the cheapest Django view: no database, no Redis) as the
baseline, so the ratio shows what the endpoint itself costs on top of the HTTP
stack. Target (issue 9): /health/ and /metrics p95 < 20 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/ops.py --clients 20 --seconds 10

The scratch database `bench_ops` is created on the DATABASE_URL server and migrated;
a health check is stored first (as beat would), and four instruments with a minute
of candles give /health/ and /metrics real rows to read. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import _scratch_db_url  # noqa: E402


def _prepare(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from signals.services import demo_instruments_seed

    call_command("migrate", verbosity=0)
    demo_instruments_seed()


async def _client(port: int, path: str, until: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            status = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            code = status.split(b" ", 2)[1] if b" " in status else b"?"
            if code not in (b"200", b"503"):
                errors.append(code.decode())
    finally:
        writer.close()


async def _load(port: int, path: str, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, path, until, latencies, errors) for _ in range(clients)))
    return latencies, errors


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--web-processes", type=int, default=1,
                        help="web processes sharing the port (signals_project.serve_web, as WEB_PROCESSES)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_url = _scratch_db_url(base, "bench_ops")
    _prepare(db_url)
    from pipeline.health_facts import health_check_record
    from bench.fanout import _start_server

    # The same start as bench/fanout.py: one daphne, or N serve_web processes on one port.
    server = _start_server("pubsub", token="", db_url=db_url, redis_url=os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"), prefix=f"ops{os.getpid()}", processes=args.web_processes)
    port = server.port
    try:
        rows = []
        for path in ("/health/live/", "/health/", "/metrics"):
            health_check_record()  # as beat does every 30 s
            asyncio.run(_load(port, path, 4, 1.0))  # warm up this path
            latencies, errors = asyncio.run(_load(port, path, args.clients, args.seconds))
            rows.append((path, len(latencies) / args.seconds, _pct(latencies, 50), _pct(latencies, 95),
                         _pct(latencies, 99), len(errors)))
    finally:
        server.stop()
    print(f"{args.clients} keep-alive clients, {args.seconds:g} s per path, {args.web_processes} web process(es)")
    print(f"{'path':<15} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for path, rate, p50, p95, p99, errors in rows:
        print(f"{path:<15} {rate:>8.0f} {p50:>8.2f} {p95:>8.2f} {p99:>8.2f} {errors:>7}")
    base_p95 = rows[0][3]
    for path, _, _, p95, _, _ in rows[1:]:
        verdict = "meets" if p95 < 20 else "MISSES"
        print(f"{path}: p95 {p95:.2f} ms ({verdict} < 20 ms), {p95 / base_p95:.2f}x /health/live/")


if __name__ == "__main__":
    main()
