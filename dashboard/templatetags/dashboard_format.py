"""Formatting shared by the server-rendered rows and the JS client (static/dashboard/
js/format.js mirrors these rules), so a row looks the same whichever drew it."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

register = template.Library()

OUTCOME_LABELS = {"open": "Open", "tp_hit": "TP hit", "sl_hit": "SL hit", "expired": "Expired",
                  "closed": "Closed", "cancelled": "Cancelled"}


def _when(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    return None


def compact_age(seconds: float) -> str:
    """'just now', '12s ago', '5m ago', '3h ago', '2d ago' (pure)."""
    seconds = max(0, int(seconds))
    if seconds < 2:
        return "just now"
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


@register.filter
def age(value) -> str:
    when = _when(value)
    if when is None:
        return ""
    return compact_age((timezone.now() - when).total_seconds())


@register.filter
def until(value) -> str:
    """'in 5m', 'in 3h', 'in 2d', or 'passed' for an expiry time."""
    when = _when(value)
    if when is None:
        return ""
    seconds = (when - timezone.now()).total_seconds()
    return "passed" if seconds <= 0 else "in " + compact_age(seconds).removesuffix(" ago").replace("just now", "1s")


@register.filter
def stop_cell(signal: dict) -> str:
    """The stop in force, with the original when an amendment or rule moved it."""
    stop = signal.get("effective_stop") or signal.get("stop_loss") or ""
    original = signal.get("stop_loss") or ""
    return stop if stop == original else f"{stop} (was {original})"


@register.filter
def reward_risk(signal: dict) -> str:
    """'2.0' for a final target twice as far from the entry as the stop ('' if unusable)."""
    try:
        entry, stop, target = (Decimal(str(signal[k])) for k in ("entry_price", "stop_loss", "take_profit"))
    except (KeyError, InvalidOperation):
        return ""
    risk = stop - entry if signal.get("direction") == "short" else entry - stop
    reward = entry - target if signal.get("direction") == "short" else target - entry
    if risk <= 0:
        return ""
    return f"{(reward / risk).quantize(Decimal('0.1'))}"


@register.filter
def utc_stamp(value) -> str:
    when = _when(value)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


@register.filter
def outcome_label(outcome: dict) -> str:
    """'Open', 'TP hit +2R', 'SL hit -1R', 'Expired'."""
    if not outcome:
        return "Open"
    label = OUTCOME_LABELS.get(outcome.get("status"), outcome.get("status", ""))
    r_multiple = outcome.get("r_multiple")
    if r_multiple not in (None, "") and outcome.get("status") != "open":
        try:
            r = Decimal(str(r_multiple)).quantize(Decimal("0.01"))
        except InvalidOperation:
            return label
        sign = "+" if r > 0 else ""
        label = f"{label} {sign}{r.normalize():f}R"
    return label
