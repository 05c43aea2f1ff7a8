"""Fan-out benchmark: N authenticated WebSocket clients on ONE web process.

For each server under test it prints commit-to-receipt latency p50/p95/p99 (paced
signals), the time until every client has every signal of a burst, delivered /
expected (must be exactly 1.000), handshake failures under a connection storm, and
RSS growth per idle connection. Servers:
  bare    bench/bare_server.py: Redis pub/sub + websockets.broadcast() (the floor)
  pubsub  our daphne + SignalConsumer on channels-redis RedisPubSubChannelLayer
  core    the same on channels-redis RedisChannelLayer (list-based)
Ratios are against `bare`, measured in the same invocation.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/fanout.py --clients 2000 --signals 50 --burst 500

`--e2e` (bench/fanout_e2e.py) times instead from the start of `POST /api/signals/`
through the same web process, with the swarm split over `--client-processes`:

    .venv/bin/python bench/fanout.py --e2e --servers bare,pubsub --clients 1000 --signals 50 --interval 0.2

Everything runs on loopback; the scratch database `bench_fanout` is created on the
DATABASE_URL server (signals are permanent, so it is re-used, never emptied).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _scratch_db_url(base: str, name: str) -> str:
    import psycopg

    admin = base.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


def _setup_django(db_url: str, prefix: str) -> str:
    os.environ["DATABASE_URL"] = db_url
    os.environ["CHANNEL_LAYER_PREFIX"] = prefix
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from signals.services import demo_instruments_seed

    call_command("migrate", verbosity=0)
    demo_instruments_seed()
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    return Token.objects.get_or_create(user=user)[0].key


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One server under test: one process, or several sharing the port (SO_REUSEPORT)."""

    kind: str
    port: int
    procs: list[subprocess.Popen]

    def rss(self) -> int:
        import psutil

        return sum(psutil.Process(proc.pid).memory_info().rss for proc in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _listens(pid: int, port: int) -> bool:
    import psutil

    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
               for c in psutil.Process(pid).net_connections(kind="tcp"))


def _start_server(kind: str, *, token: str, db_url: str, redis_url: str, prefix: str, processes: int = 1) -> Server:
    """`processes` > 1: that many processes share the port with SO_REUSEPORT, ours as
    bin/run's WEB_PROCESSES runs them (signals_project.serve_web), the bare server
    likewise, so both sides get the same cores and per-process file limits."""
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=redis_url, CHANNEL_LAYER_PREFIX=prefix,
               LOG_LEVEL="WARNING")
    if kind == "bare":
        cmd = [sys.executable, str(ROOT / "bench" / "bare_server.py"), "--port", str(port),
               "--redis", redis_url, "--channel", f"{prefix}-bare", "--token", token,
               *(["--reuse-port"] if processes > 1 else [])]
    else:
        env["CHANNEL_LAYER_BACKEND"] = kind
        cmd = ([sys.executable, "-m", "signals_project.serve_web", "--host", "127.0.0.1", "--port", str(port)]
               if processes > 1 else
               [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "signals_project.asgi:application"])
    # Server output goes to a file, never to an unread pipe: once a pipe's 64 KiB
    # filled with log lines, the server blocked in its logging call and froze mid-run.
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [open(log_dir / f"{kind}-{port}-{i}.log", "wb") for i in range(processes)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    for log in logs:
        log.close()  # the child holds its own descriptor
    deadline = time.monotonic() + 30
    waiting = list(procs)
    while time.monotonic() < deadline:
        for proc in list(waiting):
            if proc.poll() is not None:
                for other in procs:
                    other.kill()
                tail = (log_dir / f"{kind}-{port}-{procs.index(proc)}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{kind} server died: {tail}")
            if _listens(proc.pid, port):
                waiting.remove(proc)
        if not waiting:
            time.sleep(0.5)  # let the app finish importing
            return Server(kind, port, procs)
        time.sleep(0.1)
    for proc in procs:
        proc.kill()
    raise RuntimeError(f"{kind} server did not start")


@dataclass
class Client:
    received: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0


def _signal_id(frame: str) -> int | None:
    # Frames start '{"type":"new_signal","signal":{"id":123,...': avoid a full JSON
    # parse per frame so the harness is not the bottleneck.
    at = frame.find('"id":')
    if at < 0 or not frame.startswith('{"type":"new_signal"'):
        return None
    end = frame.find(",", at)
    return int(frame[at + 5:end])


async def _client_loop(ws, client: Client) -> None:
    try:
        async for frame in ws:
            now = time.perf_counter()
            sid = _signal_id(frame)
            if sid is None:
                continue
            if sid in client.received:
                client.duplicates += 1
            else:
                client.received[sid] = now
    except Exception:  # noqa: BLE001 - connection closed at the end of the run
        pass


class Publisher:
    """Creates signals (channels servers: through signal_create, timing the COMMIT)
    or publishes equivalent frames (bare server), from a thread."""

    def __init__(self, kind: str, redis_url: str, prefix: str):
        self.kind = kind
        self.redis_url = redis_url
        self.channel = f"{prefix}-bare"
        self.commit_times: dict[int, float] = {}
        self._next_bare_id = 10**12

    def publish(self, count: int, interval: float) -> list[int]:
        ids = []
        if self.kind == "bare":
            import redis

            client = redis.Redis.from_url(self.redis_url)
            for i in range(count):
                sid = self._next_bare_id
                self._next_bare_id += 1
                frame = json.dumps({"type": "new_signal", "signal": {
                    "id": sid, "symbol": "BTCUSDT", "market": "crypto", "direction": "long",
                    "entry_price": "100", "stop_loss": "90", "take_profit": "120", "confidence": 70,
                    "timeframe": "1h", "source": "bench", "note": "", "created_at": "2026-01-01T00:00:00Z",
                    "expires_at": None, "outcome": {"status": "open", "closed_at": None, "exit_price": None,
                                                    "r_multiple": None}}}, separators=(",", ":"))
                self.commit_times[sid] = time.perf_counter()
                client.publish(self.channel, frame)
                ids.append(sid)
                if interval:
                    time.sleep(interval)
            return ids
        from django.db import transaction

        from signals.services import signal_create

        for _ in range(count):
            stamp: dict[str, float] = {}
            with transaction.atomic():
                # Registered before signal_create's broadcast, so it runs first at COMMIT.
                transaction.on_commit(lambda: stamp.__setitem__("t", time.perf_counter()))
                signal = signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                                       take_profit="120", confidence=70, source="bench").signal
            self.commit_times[signal.id] = stamp["t"]
            ids.append(signal.id)
            if interval:
                time.sleep(interval)
        return ids


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def _run_one(kind: str, args, *, token: str, db_url: str, redis_url: str, prefix: str) -> dict:
    import websockets

    server = _start_server(kind, token=token, db_url=db_url, redis_url=redis_url, prefix=prefix)
    result: dict = {"server": kind, "clients": args.clients}
    try:
        rss_before = server.rss()
        clients = [Client() for _ in range(args.clients)]
        sockets: list = []
        live: list[Client] = []
        failures = 0
        sem = asyncio.Semaphore(args.concurrency)
        url = f"ws://127.0.0.1:{server.port}/ws/signals/"

        async def _connect(client: Client):
            nonlocal failures
            async with sem:
                try:
                    ws = await websockets.connect(url, additional_headers={"Authorization": f"Token {token}"},
                                                  origin=f"http://127.0.0.1:{server.port}", open_timeout=60,
                                                  max_queue=None, ping_interval=None, compression=None)
                except Exception:  # noqa: BLE001 - counted as a failed handshake
                    failures += 1
                    return
                sockets.append(ws)
                live.append(client)
                asyncio.get_running_loop().create_task(_client_loop(ws, client))

        started = time.perf_counter()
        await asyncio.gather(*(_connect(c) for c in clients))
        result["connect_seconds"] = round(time.perf_counter() - started, 2)
        result["handshake_failures"] = failures
        await asyncio.sleep(3)
        result["rss_per_conn_kib"] = round((server.rss() - rss_before) / max(1, len(sockets)) / 1024, 1)
        connected = len(live)

        publisher = Publisher(kind, redis_url, prefix)

        async def _wait_for(ids: list[int], timeout: float) -> float:
            deadline = time.perf_counter() + timeout
            wanted = set(ids)
            while time.perf_counter() < deadline:
                if all(wanted.issubset(c.received.keys()) for c in live):
                    return time.perf_counter()
                await asyncio.sleep(0.02)
            return float("nan")

        # Phase 1: paced signals -> latency distribution.
        paced = await asyncio.to_thread(publisher.publish, args.signals, args.interval)
        await _wait_for(paced, 30)
        latencies = [
            (c.received[sid] - publisher.commit_times[sid]) * 1000
            for c in live for sid in paced if sid in c.received
        ]
        result["p50_ms"] = round(_pct(latencies, 50), 2)
        result["p95_ms"] = round(_pct(latencies, 95), 2)
        result["p99_ms"] = round(_pct(latencies, 99), 2)
        result["paced_delivered_ratio"] = round(len(latencies) / (connected * len(paced)), 4) if connected else 0

        # Phase 2: a burst as fast as the publisher can go -> completeness and drain time.
        burst_started = time.perf_counter()
        burst = await asyncio.to_thread(publisher.publish, args.burst, 0)
        done_at = await _wait_for(burst, args.burst_timeout)
        delivered = sum(1 for c in live for sid in burst if sid in c.received)
        result["burst"] = args.burst
        result["burst_publish_seconds"] = round(max(publisher.commit_times[s] for s in burst) - burst_started, 2)
        result["burst_all_delivered_seconds"] = round(done_at - burst_started, 2)
        result["burst_delivered_ratio"] = round(delivered / (connected * len(burst)), 4) if connected else 0
        result["duplicates"] = sum(c.duplicates for c in live)
        for ws in sockets:
            await ws.close()
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--signals", type=int, default=50, help="paced signals for the latency figures")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between paced signals")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--burst-timeout", type=float, default=180)
    parser.add_argument("--concurrency", type=int, default=200, help="simultaneous handshakes")
    parser.add_argument("--servers", default="bare,pubsub,core")
    parser.add_argument("--e2e", action="store_true", help="time from the start of POST /api/signals/ (same web "
                        "process) until each client holds the signal; swarm split over --client-processes")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--idle-posts", type=int, default=200, help="--e2e: single POSTs timed on the idle server")
    parser.add_argument("--connect-rate", type=float, default=4000.0,
                        help="--e2e: new clients per second over the whole swarm (a ramp, not a storm)")
    parser.add_argument("--web-processes", type=int, default=1, help="--e2e: server processes sharing the port "
                        "(both servers; one process holds at most `ulimit -n` sockets)")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench{os.getpid()}"
    db_url = _scratch_db_url(base, "bench_fanout")
    token = _setup_django(db_url, prefix)

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 1000)), hard))

    if args.e2e:
        from fanout_e2e import run_e2e

        bare = None
        for kind in [k.strip() for k in args.servers.split(",") if k.strip()]:
            r = run_e2e(kind, args, token=token, db_url=db_url, redis_url=redis_url, prefix=prefix)
            if kind == "bare":
                bare = r
            elif bare:
                r.update({f"{q}_x_bare": round(r[f"{q}_ms"] / bare[f"{q}_ms"], 2) for q in ("p95", "p99")},
                         mem_x_bare=round(r["rss_per_conn_kib"] / bare["rss_per_conn_kib"], 2))
            print(json.dumps(r), flush=True)  # each server as it finishes: a later failure keeps it
        return

    results = []
    for kind in [k.strip() for k in args.servers.split(",") if k.strip()]:
        print(f"--- {kind}: {args.clients} clients, {args.signals} paced signals, burst {args.burst}", flush=True)
        result = asyncio.run(_run_one(kind, args, token=token, db_url=db_url, redis_url=redis_url, prefix=prefix))
        print(json.dumps(result), flush=True)
        results.append(result)

    base_result = next((r for r in results if r["server"] == "bare"), None)
    print()
    header = (f"{'server':8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'burst all s':>11} {'delivered':>9} "
              f"{'dups':>5} {'hs fail':>7} {'KiB/conn':>8} {'p95 x':>6} {'mem x':>6}")
    print(header)
    for r in results:
        p95x = r["p95_ms"] / base_result["p95_ms"] if base_result and base_result["p95_ms"] else float("nan")
        memx = (r["rss_per_conn_kib"] / base_result["rss_per_conn_kib"]
                if base_result and base_result["rss_per_conn_kib"] else float("nan"))
        print(f"{r['server']:8} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} "
              f"{r['burst_all_delivered_seconds']:>11} {r['burst_delivered_ratio']:>9.3f} {r['duplicates']:>5} "
              f"{r['handshake_failures']:>7} {r['rss_per_conn_kib']:>8} {p95x:>6.2f} {memx:>6.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
