"""The candle storage tests again, on SQLite: the database `bin/run` uses by default.

Why a second run: pipeline/candle_sql.py has a SQLite branch (executemany upserts,
rollups computed in Python) that the PostgreSQL suite never executes, yet it is the
one every newcomer's demo writes through. Settings are read once per process, so the
same test module runs in a child pytest with DATABASE_URL unset (SQLite in WAL mode
in a scratch VAR_DIR, exactly as bin/run configures it); the real Redis stays.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORAGE_TESTS = ["pipeline/tests/test_candles.py", "pipeline/tests/test_rollup_long.py"]


@pytest.mark.slow
def test_it_passes_the_candle_storage_tests_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(SIGNALS_TEST_ON_SQLITE="1", VAR_DIR=str(tmp_path / "var"),
               CACHE_KEY_PREFIX=f"sqlite-{os.getpid()}", CHANNEL_LAYER_PREFIX=f"sqlite-{os.getpid()}")
    probe = ("from django.db import connection; import django; django.setup(); "
             "print(connection.vendor, connection.settings_dict['OPTIONS'].get('transaction_mode'))")
    vendor = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**env, "DJANGO_SETTINGS_MODULE": "signals_project.settings"})
    assert vendor.stdout.split() == ["sqlite", "IMMEDIATE"], vendor.stdout + vendor.stderr
    result = subprocess.run([sys.executable, "-m", "pytest", *STORAGE_TESTS, "-q"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", summary) and not re.search(r"skipped|failed|error", summary), summary
