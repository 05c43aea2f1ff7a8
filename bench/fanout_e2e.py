"""End-to-end publish latency (bench/fanout.py --e2e): from the start of
`POST /api/signals/` (token auth, through the same web process the clients are
connected to) until each client holds the signal, against the bare
`websockets.broadcast` server (timed from its Redis publish) in the same run. The
client swarm is split over processes so the harness is not the bottleneck. Also
profiles single POSTs on the idle server (no clients) and the first POST after start.
"""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time

from fanout import ROOT, Publisher, _pct, _start_server  # bench/ is on sys.path when run as a script

BODY = json.dumps({"symbol": "BTCUSDT", "direction": "long", "entry_price": "100", "stop_loss": "90",
                   "take_profit": "120", "confidence": 70, "source": "bench"})


class _Api:
    """One keep-alive HTTP connection to the web process."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(self) -> tuple[int, float, float]:
        """(signal id, wall-clock start, seconds the request took)."""
        started, clock = time.time(), time.perf_counter()
        try:
            self.conn.request("POST", "/api/signals/", body=BODY, headers=self.headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the keep-alive connection while a large swarm took
            # minutes to connect: reconnect once (the timing then includes the connect).
            self.conn.close()
            self.conn.connect()
            self.conn.request("POST", "/api/signals/", body=BODY, headers=self.headers)
            response = self.conn.getresponse()
        payload = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST answered {response.status}: {payload[:200]!r}")
        return json.loads(payload)["id"], started, time.perf_counter() - clock


def _swarm(url: str, token: str, clients: int, processes: int, bare: bool,
           connect_rate: float = 4000.0) -> list[subprocess.Popen]:
    """`connect_rate`: new clients per second over the whole swarm."""
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    return [subprocess.Popen([sys.executable, str(ROOT / "bench" / "fanout_clients.py"), "--url", url,
                              "--token", token, "--clients", str(n), "--connect-rate", str(connect_rate / processes),
                              *(["--bare"] if bare else [])], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, bufsize=1) for n in per if n]


def _ask(procs, line: str) -> list[dict]:
    for proc in procs:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    return [json.loads(proc.stdout.readline()) for proc in procs]


def run_e2e(kind: str, args, *, token: str, db_url: str, redis_url: str, prefix: str) -> dict:
    server = _start_server(kind, token=token, db_url=db_url, redis_url=redis_url, prefix=prefix,
                           processes=args.web_processes)
    result: dict = {"server": kind, "clients": args.clients, "processes": args.web_processes}
    procs = []
    try:
        if kind != "bare":
            api = _Api(server.port, token)
            first = api.post()[2]
            idle = sorted(api.post()[2] * 1000 for _ in range(args.idle_posts))
            result.update(first_post_ms=round(first * 1000, 1), idle_post_p50_ms=round(_pct(idle, 50), 2),
                          idle_post_p95_ms=round(_pct(idle, 95), 2))
        rss_before = server.rss()
        procs = _swarm(f"ws://127.0.0.1:{server.port}/ws/signals/", token, args.clients, args.client_processes,
                       kind == "bare", args.connect_rate)
        connect_started = time.monotonic()
        deadline = time.monotonic() + 600
        while sum(a["open"] for a in _ask(procs, "count")) < args.clients and time.monotonic() < deadline:
            time.sleep(1)
        result["open_clients"] = sum(a["open"] for a in _ask(procs, "count"))
        result["connect_seconds"] = round(time.monotonic() - connect_started, 1)
        time.sleep(3)
        result["rss_per_conn_kib"] = round((server.rss() - rss_before) / args.clients / 1024, 1)
        starts: dict[int, float] = {}
        publisher = Publisher(kind, redis_url, prefix)
        for _ in range(args.signals):
            if kind == "bare":
                started = time.time()
                signal_id = publisher.publish(1, 0)[0]
            else:
                signal_id, started, _ = api.post()
            starts[signal_id] = started
            time.sleep(args.interval)
        time.sleep(5)
        answers = _ask(procs, "latencies " + json.dumps(starts))
        latencies = sorted(ms for a in answers for ms in a["ms"])
        result.update(p50_ms=_pct(latencies, 50), p95_ms=_pct(latencies, 95), p99_ms=_pct(latencies, 99),
                      delivered_ratio=round(len(latencies) / (args.clients * len(starts)), 4))
    finally:
        for proc in procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a stuck child is killed
                proc.kill()
        server.stop()
    return result
