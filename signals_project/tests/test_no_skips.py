"""bin/test fails, never skips: a test that skips (a missing service, browser or
module) fails the run with its reason, so nothing is silently left out of CI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_turns_a_skip_into_a_failure(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_it_skips():\n"
        "    pytest.skip('Chromium is missing')\n"
        "@pytest.mark.skip(reason='no Redis')\n"
        "def test_it_is_marked():\n"
        "    pass\n"
        "def test_it_passes():\n"
        "    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", os.devnull, str(tmp_path / "test_sample.py")],
        cwd=ROOT, env=dict(os.environ, DJANGO_SETTINGS_MODULE="signals_project.settings"),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped tests are not allowed here; fix the cause instead: Skipped: Chromium is missing" in result.stdout
    assert "no Redis" in result.stdout
    assert "1 passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]
