"""Production settings: `manage.py check --deploy --fail-level WARNING` passes with the
production variables set and fails loudly when one of them is forgotten.

Each case runs manage.py in a clean subprocess environment (settings are read once per
process); the cases run side by side to keep the wall time near one Django start-up.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Exactly what a production deployment sets (README lists them with the others).
PRODUCTION_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "signals.example.com",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "DATABASE_URL": "postgres://signals:secret@db.internal:5432/signals",
    "REDIS_URL": "redis://redis.internal:6379/0",
}

# Each production variable left out -> the deploy check that must catch it.
MISSING = {
    "SECRET_KEY": "security.W009",  # the dev fallback key is marked insecure
    "SECURE_SSL_REDIRECT": "security.W008",
    "SESSION_COOKIE_SECURE": "security.W012",
    "CSRF_COOKIE_SECURE": "security.W016",
    "SECURE_HSTS_SECONDS": "security.W004",
}


def _env(changes: dict[str, str | None] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(PRODUCTION_ENV)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run_all(cases: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, subprocess.CompletedProcess]:
    procs = {
        name: subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for name, (args, env) in cases.items()
    }
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out)
    return results


DEPLOY_CHECK = ["check", "--deploy", "--fail-level", "WARNING"]


def test_it_passes_the_deploy_check_with_production_variables_and_catches_each_mistake():
    forgotten = {name: None for name in MISSING} | {"DEBUG": "1", "ALLOWED_HOSTS": ""}
    results = _run_all({"production": (DEPLOY_CHECK, _env()), "forgotten": (DEPLOY_CHECK, _env(forgotten))})

    production = results["production"]
    # Passing also proves DEBUG is off when unset (security.W018 otherwise).
    assert production.returncode == 0, production.stdout
    assert "no issues" in production.stdout
    bad = results["forgotten"]
    assert bad.returncode != 0, bad.stdout
    for check_id in [*MISSING.values(), "security.W018", "security.W020"]:
        assert check_id in bad.stdout, f"expected {check_id}\n{bad.stdout}"
