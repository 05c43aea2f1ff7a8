"""Typed readers for environment variables, used only by settings.py.

Why: a typo in a variable must stop the process at start-up with a message naming
the variable (healthchecks' `envbool`), not silently mean False or 0 and surface
hours later as a misbehaving production. Unset or empty means the default (lists:
unset means the default, empty means empty).
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def env_str(name: str, default: str) -> str:
    """The variable's text, stripped; `default` when unset or empty."""
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is a configuration error."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def _number(name: str, default, cast, noun: str, minimum):
    value = _raw(name)
    if value is None:
        return default
    try:
        number = cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {noun}.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number.")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number:g} must be at least {minimum:g}.")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole number (at least `minimum` when given)."""
    return _number(name, default, int, "a whole number", minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """A decimal number (at least `minimum` when given)."""
    return _number(name, default, float, "a number", minimum)


_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def env_rate(name: str, default: str) -> str:
    """A request rate in DRF's syntax, e.g. 120/min (per s, min, hour or day)."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    if not (count.isdigit() and period in _RATE_PERIODS):
        raise ImproperlyConfigured(f"{name}={value!r} must look like 60/min (per s, min, hour or day).")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list, items stripped, empty items dropped. Unlike the scalar
    readers, a variable that is set but empty means an empty list (ALLOWED_HOSTS=""
    must not quietly become the development hosts)."""
    value = os.environ.get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (exact spelling)."""
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value
