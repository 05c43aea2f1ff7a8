"""Inbound alerts (TradingView-style webhooks) become signals through `signal_create`.

Two formats, both parsed into the API's own create input (one input path):

* JSON: the fields of `POST /api/signals/` (without `source`, which the token sets)
  plus an optional `alert_id`;
* a one-line text template, what an alert message box holds:

      BTCUSDT long entry=65000 sl=64000 tp=66000,67000 conf=80 tf=1h id=abc note="RSI cross"

  symbol and direction (long/short, or buy/sell) first, then key=value pairs:
  `entry`, `sl` (or `stop`), `tp` (one price, or several for a ladder split into
  equal portions; the last is the take-profit), `conf`, `tf`, `id` (the alert id),
  `expires` (ISO 8601 time), `note` (quote it when it has spaces).

A repeat of the same alert (its `alert_id`, else the body's SHA-256) within
`INBOUND_DEDUP_SECONDS` answers with the first signal instead of making another.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from signals.api.serializers import SignalCreateInputSerializer
from signals.models import Signal
from signals.selectors import signal_payload
from signals.services import IdempotencyConflict, SignalValidationError, signal_create

from .metrics import INBOUND_ALERTS
from .models import InboundAlertLog, InboundResult, InboundToken

_TEXT_KEYS = {
    "entry": "entry_price", "sl": "stop_loss", "stop": "stop_loss", "tp": "take_profit",
    "conf": "confidence", "confidence": "confidence", "tf": "timeframe", "timeframe": "timeframe",
    "id": "alert_id", "alert_id": "alert_id", "expires": "expires_at", "note": "note",
}
_DIRECTIONS = {"long": "long", "buy": "long", "short": "short", "sell": "short"}
_MAX_ALERT_ID = 128


class AlertRejected(Exception):
    """A malformed alert; `errors` maps field -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class InboundAnswer:
    status: int
    body: dict[str, Any]


def equal_portions(count: int) -> list[str]:
    """Portions of a ladder split evenly, 4 places, summing to exactly 1."""
    share = (Decimal(1) / count).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    portions = [share] * (count - 1)
    portions.append(Decimal(1) - sum(portions, Decimal(0)))
    return [format(p.normalize(), "f") for p in portions]


def _text_fields(text: str) -> dict[str, Any]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise AlertRejected({"body": [f"Cannot read the text template: {exc}."]}) from None
    if len(words) < 2:
        raise AlertRejected({"body": ["Expected 'SYMBOL long|short entry=.. sl=.. tp=..' (see the docs)."]})
    errors: dict[str, list[str]] = {}
    direction = _DIRECTIONS.get(words[1].lower())
    if direction is None:
        errors["direction"] = [f"'{words[1]}' is not a direction: use long, short, buy or sell."]
    fields: dict[str, Any] = {"symbol": words[0], "direction": direction}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        name = _TEXT_KEYS.get(key.lower())
        if not sep or name is None:
            errors.setdefault("body", []).append(
                f"Unknown part '{word}': use key=value with keys {', '.join(sorted(set(_TEXT_KEYS)))}.")
            continue
        fields[name] = value
    if "take_profit" in fields:
        prices = [p.strip() for p in fields["take_profit"].split(",")]
        if not all(prices):
            errors["take_profit"] = ["Targets are prices separated by commas, e.g. tp=66000,67000."]
        fields["take_profit"] = prices[-1]
        if len(prices) > 1:
            fields["targets"] = [{"price": p, "portion": s} for p, s in zip(prices, equal_portions(len(prices)))]
    if errors:
        raise AlertRejected(errors)
    return fields


def alert_parse(body: bytes) -> tuple[dict[str, Any], str | None]:
    """Read an alert; returns (the create input as `POST /api/signals/` takes it, alert_id).

    Raises AlertRejected naming every problem.
    """
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AlertRejected({"body": ["The alert must be UTF-8 text or JSON."]}) from None
    if not text:
        raise AlertRejected({"body": ["The alert is empty."]})
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError as exc:
            raise AlertRejected({"body": [f"Malformed JSON: {exc}."]}) from None
        if not isinstance(fields, dict):
            raise AlertRejected({"body": ["The JSON alert must be an object."]})
    else:
        fields = _text_fields(text)
    alert_id = fields.pop("alert_id", None)
    errors: dict[str, list[str]] = {}
    if alert_id is not None and (not isinstance(alert_id, (str, int)) or isinstance(alert_id, bool)
                                 or not 1 <= len(str(alert_id)) <= _MAX_ALERT_ID):
        errors["alert_id"] = [f"An alert id is text of 1 to {_MAX_ALERT_ID} characters."]
    if "source" in fields:
        errors["source"] = ["The source is set by the token; leave it out."]
    serializer = SignalCreateInputSerializer(data={k: v for k, v in fields.items() if k != "source"})
    known = set(serializer.fields)
    unknown = sorted(k for k in fields if k not in known and k != "source")
    if unknown:
        errors["body"] = [f"Unknown field(s) {', '.join(unknown)}."]
    if not serializer.is_valid():
        errors.update({k: [str(m) for m in v] for k, v in serializer.errors.items()})
    if errors:
        raise AlertRejected(errors)
    clean = dict(serializer.validated_data)
    clean.pop("source", None)
    return clean, (str(alert_id) if alert_id is not None else None)


def _log(token: InboundToken, *, now, result: str, status: int, key: str, body: bytes, signal_id=None,
         error: str = "") -> None:
    InboundAlertLog.objects.create(token=token, received_at=now, result=result, http_status=status, dedup_key=key,
                                   signal_id=signal_id, body_excerpt=body[:1000].decode("utf-8", "replace"),
                                   error=error)
    INBOUND_ALERTS.labels(result=result).inc()


def inbound_alert_receive(*, token: InboundToken, body: bytes, now: dt.datetime | None = None) -> InboundAnswer:
    """Turn one alert into a signal as the token's source and publisher.

    Returns 201 + signal, 200 + the first signal for a repeat within the window, or
    400 with the reasons (logged for the admin).
    """
    now = now or timezone.now()
    body_key = "sha256:" + hashlib.sha256(body).hexdigest()
    publisher = token.publisher
    if publisher is not None and not (publisher.is_active and (publisher.is_staff
                                                               or publisher.has_perm("signals.add_signal"))):
        # The token publishes as this user, so it can do no more than the user could.
        return InboundAnswer(403, {"detail": f"The token's publisher {publisher.get_username()!r} may not "
                                             "publish signals (needs staff or signals.add_signal)."})
    try:
        fields, alert_id = alert_parse(body)
    except AlertRejected as exc:
        _log(token, now=now, result=InboundResult.REJECTED, status=400, key=body_key, body=body, error=str(exc))
        return InboundAnswer(400, {"detail": "Malformed alert.", "errors": exc.errors})
    key = f"id:{alert_id}" if alert_id is not None else body_key
    window_start = now - dt.timedelta(seconds=settings.INBOUND_DEDUP_SECONDS)
    with transaction.atomic():
        # One alert of a token at a time, so two copies arriving together cannot both
        # miss each other's log row and publish twice.
        InboundToken.objects.filter(pk=token.pk).update(last_used_at=now)  # row lock until commit
        first = (InboundAlertLog.objects.filter(token=token, dedup_key=key, received_at__gte=window_start,
                                                signal_id__isnull=False)
                 .order_by("received_at", "id").first())
        if first is not None:
            signal = Signal.objects.select_related("outcome").get(pk=first.signal_id)
            _log(token, now=now, result=InboundResult.DUPLICATE, status=200, key=key, body=body,
                 signal_id=signal.id)
            return InboundAnswer(200, signal_payload(signal))
        try:
            result = signal_create(**fields, source=token.source, created_by=token.publisher)
        except (SignalValidationError, IdempotencyConflict) as exc:
            errors = getattr(exc, "errors", {"body": [str(exc)]})
            _log(token, now=now, result=InboundResult.REJECTED, status=400, key=key, body=body, error=str(exc))
            return InboundAnswer(400, {"detail": "Malformed alert.", "errors": errors})
        _log(token, now=now, result=InboundResult.ACCEPTED, status=201, key=key, body=body,
             signal_id=result.signal.id)
    return InboundAnswer(201, signal_payload(result.signal))
