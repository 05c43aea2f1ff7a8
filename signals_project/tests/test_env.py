"""Settings fail loudly: a malformed environment value stops start-up with an error
naming the variable, instead of silently meaning False or 0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from signals_project.env import env_bool, env_choice, env_float, env_int, env_list, env_rate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw, expected", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                           ("0", False), ("False", False), ("no", False), ("off", False)])
def test_it_reads_the_usual_boolean_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", not expected) is expected


def test_it_reads_a_request_rate(monkeypatch):
    monkeypatch.setenv("SOME_RATE", "30/hour")
    assert env_rate("SOME_RATE", "1/min") == "30/hour"


def test_it_uses_the_default_when_unset_or_empty(monkeypatch):
    monkeypatch.delenv("SOME_FLAG", raising=False)
    assert env_bool("SOME_FLAG", True) is True
    monkeypatch.setenv("SOME_FLAG", "  ")
    assert env_bool("SOME_FLAG", True) is True
    assert env_int("SOME_FLAG", 7) == 7
    assert env_float("SOME_FLAG", 2.5) == 2.5
    assert env_list("SOME_FLAG", "a, b") == []  # set but empty: an empty list, not the default
    monkeypatch.delenv("SOME_FLAG")
    assert env_list("SOME_FLAG", "a, b,,c") == ["a", "b", "c"]


@pytest.mark.parametrize("reader, raw", [
    (lambda: env_bool("SOME_VAR"), "ture"),
    (lambda: env_int("SOME_VAR", 1), "12s"),
    (lambda: env_int("SOME_VAR", 1, minimum=0), "-3"),
    (lambda: env_float("SOME_VAR", 1.0), "five"),
    (lambda: env_float("SOME_VAR", 1.0), "nan"),
    (lambda: env_choice("SOME_VAR", "a", ("a", "b")), "c"),
    (lambda: env_rate("SOME_VAR", "1/min"), "120 per minute"),
    (lambda: env_rate("SOME_VAR", "1/min"), "x/min"),
])
def test_it_refuses_a_malformed_value_naming_the_variable(monkeypatch, reader, raw):
    monkeypatch.setenv("SOME_VAR", raw)
    with pytest.raises(ImproperlyConfigured, match="SOME_VAR"):
        reader()


@pytest.mark.parametrize("name, raw", [("DEBUG", "ture"), ("SECURE_HSTS_SECONDS", "1y"),
                                       ("WS_WATCHDOG_SECONDS", "soon"), ("CHANNEL_LAYER_BACKEND", "pubsbu"),
                                       ("SIGNAL_CREATE_RATE", "120/fortnight")])
def test_it_stops_manage_py_on_a_typo_in_a_setting(name, raw):
    env = dict(os.environ, **{name: raw})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-2000:]


def test_it_reads_the_watchdog_interval_from_settings(settings):
    from signals import hub

    assert hub.WATCHDOG_INTERVAL_SECONDS == settings.WS_WATCHDOG_SECONDS
