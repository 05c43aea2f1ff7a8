"""The product's processes under supervisord (what bin/run runs them with).

Why supervisord: a crashed web, worker, beat, feed, simulator or embedded Redis
must come back by itself, with backoff and a log line, while Ctrl-C still stops all.
supervisord is the maintained tool for exactly that: a process that dies is
restarted ("exited: web (terminated by SIGKILL; not expected)" then "spawned"); one
that dies again within `startsecs` of starting is retried after 1, 2, 3 ... seconds
and given up ("gave up: ... entered FATAL state") after `startretries` attempts, so a
broken configuration does not spin. Its XML-RPC socket lets the launcher start the
processes once the database is migrated and lets an operator run
`supervisorctl -c var/run/supervisord.conf status|restart web`.
"""
from __future__ import annotations

import configparser
import http.client
import io
import os
import secrets
import shlex
import sys
import time
from pathlib import Path
from xmlrpc.client import Fault, ServerProxy

from supervisor.xmlrpc import SupervisorTransport

# Start order (supervisord's priority: lower first) and per-process restart policy.
_PRIORITY = {"redis": 1, "simulator": 10, "web": 20, "worker": 30, "beat": 40, "feed": 50}
START_RETRIES = 10
_START_SECONDS = {"redis": 1}
_DEFAULT_START_SECONDS = 3


def config_text(*, programs: dict[str, str], run_dir: Path, log_dir: Path, cwd: Path,
                autostart: frozenset[str] = frozenset()) -> str:
    """supervisord.conf for `programs` (name -> command line). Children inherit
    supervisord's environment; their output goes to supervisord's stdout, each line
    prefixed with the process name (signals_project.log_printer). The control
    socket is private to this user and password-protected (a fresh password per run)."""
    config = configparser.RawConfigParser()
    login = {"username": "bin-run", "password": secrets.token_urlsafe(24)}
    config["unix_http_server"] = {"file": str(run_dir / "supervisor.sock"), "chmod": "0700", **login}
    config["supervisord"] = {
        "nodaemon": "true",
        "logfile": str(log_dir / "supervisord.log"),
        "logfile_maxbytes": "5MB",
        "logfile_backups": "2",
        "pidfile": str(run_dir / "supervisord.pid"),
        "childlogdir": str(log_dir),
        # Running as root is stated, not a reason for a CRIT line on every start.
        **({"user": "root"} if os.geteuid() == 0 else {}),
    }
    config["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface",
    }
    config["supervisorctl"] = {"serverurl": f"unix://{run_dir / 'supervisor.sock'}", **login}
    for name, command in programs.items():
        config[f"program:{name}"] = {
            "command": command,
            "directory": str(cwd),
            "priority": str(_PRIORITY.get(name.partition("-")[0], 60)),  # web-2 starts with web
            "autostart": "true" if name in autostart else "false",
            "autorestart": "true",
            "startsecs": str(_START_SECONDS.get(name, _DEFAULT_START_SECONDS)),
            "startretries": str(START_RETRIES),
            "stopsignal": "TERM",
            "stopwaitsecs": "10",
            # Celery's pool children and daphne's threads go down with their parent.
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            # Output goes to the terminal through the log printer, prefixed with the name.
            "stdout_logfile": "NONE",
            "stdout_events_enabled": "true",
        }
    config["eventlistener:output"] = {
        "command": command_line(sys.executable, "-m", "signals_project.log_printer"),
        "directory": str(cwd),
        "events": "PROCESS_LOG",
        "buffer_size": "100000",  # events queued while the printer is busy, never dropped early
        "priority": "0",
        "autostart": "true",
        "autorestart": "true",
        "stdout_logfile": "NONE",  # its stdout is the event protocol, nothing to keep
        "stderr_logfile": "/dev/stdout",
        "stderr_logfile_maxbytes": "0",
    }
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def command_line(*argv: str) -> str:
    """A command for supervisord's `command=` (shell-quoted; % escaped for its parser)."""
    return " ".join(shlex.quote(arg) for arg in argv).replace("%", "%%")


def supervisord_argv(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(config_path)]


class Supervisor:
    """A client of a running supervisord's XML-RPC socket, configured by its file."""

    def __init__(self, config_path: Path):
        config = configparser.RawConfigParser()
        config.read(config_path)
        ctl = config["supervisorctl"]
        self.socket_path = ctl["serverurl"].removeprefix("unix://")
        self._login = (ctl.get("username"), ctl.get("password"))
        self._rpc = self._proxy()

    def _proxy(self) -> ServerProxy:
        return ServerProxy("http://127.0.0.1",
                           transport=SupervisorTransport(*self._login, f"unix://{self.socket_path}"))

    def wait_reachable(self, timeout: float, *, alive=lambda: True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            try:
                if self._rpc.supervisor.getState()["statename"] == "RUNNING":
                    return
            except (OSError, Fault, http.client.HTTPException):
                self._rpc = self._proxy()  # a failed request leaves the connection unusable
            time.sleep(0.2)
        raise TimeoutError(f"supervisord did not answer on {self.socket_path}")

    def start_all(self) -> None:
        """Start every process not yet running (in priority order, side by side) and
        wait until each has stayed up for its start seconds."""
        failed = [f"{r['name']} ({r['description']})" for r in self._rpc.supervisor.startAllProcesses(True)
                  if r["status"] != 80]  # 80: supervisor's SUCCESS fault code
        if failed:
            raise RuntimeError(f"did not start: {', '.join(failed)}; see the output above")

    def info(self, name: str) -> dict:
        return self._rpc.supervisor.getProcessInfo(name)

    def states(self) -> dict[str, str]:
        return {p["name"]: p["statename"] for p in self._rpc.supervisor.getAllProcessInfo()}
