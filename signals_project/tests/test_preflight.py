"""bin/test's preflight: an unreachable PostgreSQL or Redis stops the run before any
test, with a message that says what to fix (the suite fails, it never skips)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _preflight(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signals_project.preflight", "--require-postgres"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_it_passes_with_the_real_services():
    result = _preflight()
    assert result.returncode == 0, result.stderr


def test_it_fails_naming_an_unreachable_postgres_and_redis():
    closed = free_port()
    result = _preflight(DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/nothing",
                        REDIS_URL=f"redis://127.0.0.1:{closed}/0")
    assert result.returncode == 1
    assert f"PostgreSQL at DATABASE_URL='postgres://postgres@127.0.0.1:{closed}/nothing' is unreachable" in result.stderr
    assert f"Redis at REDIS_URL='redis://127.0.0.1:{closed}/0' is unreachable" in result.stderr


def test_it_refuses_to_run_the_suite_without_postgres():
    result = _preflight(DATABASE_URL="")
    assert result.returncode == 1
    assert "the test suite needs PostgreSQL: set DATABASE_URL=postgres://" in result.stderr
