"""`signal_create`: the single way a signal comes into existence.

Every caller (admin form, REST API, inbound alerts, pipeline strategies, imports)
goes through it, so the domain rules, the serialization of ids, idempotency and the
broadcast are identical whatever the door. Doors parse types first (see
signals.prices and the API serializer); the rules here also accept plain strings so
trusted callers such as strategies and imports need no serializer.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..broadcast import signal_broadcast_on_commit
from ..metrics import SIGNALS_CREATED
from ..models import Direction, IdempotencyRecord, Instrument, OutcomeStatus, Signal, SignalEvent, SignalOutcome
from ..prices import PriceError, price_parse
from ..timeframes import DEFAULT_SIGNAL_TIMEFRAME, SIGNAL_TIMEFRAMES
from .ladders import stop_rule_clean, targets_clean
from .stats import stats_count_signal

# Arbitrary constant naming our advisory lock; one lock serializes all signal inserts.
_SIGNAL_CREATE_LOCK_KEY = 0x5167_4E41  # "SgNA"
MAX_NOTE_LENGTH = 2000
MAX_EXTERNAL_ID_LENGTH = 128
# Marks a field the door could not parse: its rules are skipped, its error is the door's.
_MISSING: Any = object()


class SignalValidationError(Exception):
    """Bad input for a signal; `errors` maps field name -> list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used for a different request body."""


@dataclass(frozen=True)
class SignalCreateResult:
    signal: Signal
    created: bool


def _has_nul(value: Any) -> bool:
    # PostgreSQL text cannot hold NUL; catching it here keeps it a field error.
    return isinstance(value, str) and "\x00" in value


def _price(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
    if value is _MISSING:
        return None
    try:
        return price_parse(value)
    except PriceError as exc:
        errors.setdefault(field, []).append(str(exc))
        return None


def _instrument(symbol: Any, errors: dict[str, list[str]]) -> Instrument | None:
    if symbol is _MISSING:
        return None
    if not symbol or not isinstance(symbol, str):
        errors["symbol"] = ["This field is required."]
        return None
    if _has_nul(symbol):
        errors["symbol"] = [f"Unknown symbol {symbol!r}."]
        return None
    instrument = Instrument.objects.filter(symbol=symbol.strip().upper()).first()
    if instrument is None:
        errors["symbol"] = [f"Unknown symbol '{symbol}'."]
    elif not instrument.active:
        errors["symbol"] = [f"Symbol '{instrument.symbol}' is not active."]
        return None
    return instrument


def _levels(f: dict[str, Any], clean: dict[str, Any], errors: dict[str, list[str]]) -> None:
    direction = f["direction"]
    if direction is not _MISSING and direction not in Direction.values:
        errors["direction"] = ["Must be 'long' or 'short'."]
    clean["direction"] = direction
    entry = _price(f["entry_price"], "entry_price", errors)
    stop = _price(f["stop_loss"], "stop_loss", errors)
    take = None if f["take_profit"] is None else _price(f["take_profit"], "take_profit", errors)
    if f["take_profit"] is None and f["targets"] is None:
        errors.setdefault("take_profit", []).append("This field is required.")
    side = direction if direction in Direction.values else None
    if entry is not None and stop is not None and side:
        is_long = side == Direction.LONG
        if (stop >= entry) if is_long else (stop <= entry):
            errors.setdefault("stop_loss", []).append(
                f"For a {side} signal the stop-loss must be {'below' if is_long else 'above'} the entry price.")
    if entry is not None and take is not None and side:
        is_long = side == Direction.LONG
        if (take <= entry) if is_long else (take >= entry):
            errors.setdefault("take_profit", []).append(
                f"For a {side} signal the take-profit must be {'above' if is_long else 'below'} the entry price.")
    targets = None
    if f["targets"] is not _MISSING:
        targets, take = targets_clean(f["targets"], direction=side, entry=entry, take_profit=take, errors=errors)
    if f["stop_rule"] is not _MISSING:
        # Unknown when the ladder itself was bad: judge the rule on its own then.
        count = len(targets) if targets else None
        clean["stop_rule"] = stop_rule_clean(f["stop_rule"], target_count=count, errors=errors)
    clean.update(entry_price=entry, stop_loss=stop, take_profit=take, targets=targets)


def _confidence(value: Any, errors: dict[str, list[str]]) -> int | None:
    if value is _MISSING:
        return None
    if isinstance(value, bool) or value is None:
        errors["confidence"] = ["An integer from 0 to 100 is required."]
        return None
    try:
        number = int(str(value))
    except ValueError:
        errors["confidence"] = ["An integer from 0 to 100 is required."]
        return None
    if not 0 <= number <= 100:
        errors["confidence"] = ["Must be between 0 and 100."]
    return number


def _aware(value: Any, field: str, errors: dict[str, list[str]]) -> dt.datetime | None:
    if not isinstance(value, dt.datetime) or timezone.is_naive(value):
        errors[field] = ["Must be a timezone-aware date and time."]
        return None
    # Store and broadcast in UTC, as the database hands it back on every read.
    return value.astimezone(dt.timezone.utc)


def _trigger(value: Any, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    if value is None or value is _MISSING:
        return None
    if not isinstance(value, dict) or set(value) != {"config_id", "timeframe", "candle_open_time"}:
        errors["trigger"] = ["Must be {'config_id', 'timeframe', 'candle_open_time'}."]
        return None
    config_id, timeframe = value["config_id"], value["timeframe"]
    if isinstance(config_id, bool) or not isinstance(config_id, int) or config_id <= 0:
        errors.setdefault("trigger", []).append("'config_id' must be a positive integer.")
    if timeframe not in SIGNAL_TIMEFRAMES:
        errors.setdefault("trigger", []).append(f"'timeframe' must be one of {', '.join(SIGNAL_TIMEFRAMES)}.")
    sub: dict[str, list[str]] = {}
    opened = _aware(value["candle_open_time"], "candle_open_time", sub)
    if sub:
        errors.setdefault("trigger", []).append("'candle_open_time' must be a timezone-aware date and time.")
    if "trigger" in errors:
        return None
    return {"trigger_config_id": config_id, "trigger_timeframe": timeframe, "trigger_candle_open_time": opened}


def _texts(f: dict[str, Any], clean: dict[str, Any], errors: dict[str, list[str]]) -> None:
    timeframe = f["timeframe"]
    if timeframe is not _MISSING and timeframe not in SIGNAL_TIMEFRAMES:
        errors["timeframe"] = [f"Must be one of {', '.join(SIGNAL_TIMEFRAMES)}."]
    clean["timeframe"] = timeframe
    source = f["source"]
    if source is not _MISSING and (not isinstance(source, str) or not source.strip() or len(source) > 64
                                   or _has_nul(source)):
        errors["source"] = ["A source name of 1 to 64 characters is required."]
    clean["source"] = source.strip() if isinstance(source, str) else source
    note = "" if f["note"] in (None, _MISSING) else f["note"]
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        errors["note"] = [f"Must be text of at most {MAX_NOTE_LENGTH} characters."]
    elif _has_nul(note):
        errors["note"] = ["Must not contain NUL characters."]
    clean["note"] = note
    external_id = f["external_id"]
    if external_id not in (None, _MISSING) and (
        not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_EXTERNAL_ID_LENGTH
        or _has_nul(external_id)
    ):
        errors["external_id"] = [f"Must be text of 1 to {MAX_EXTERNAL_ID_LENGTH} characters."]
    clean["external_id"] = None if external_id is _MISSING else external_id


def _validate(fields: dict[str, Any], *, now: dt.datetime) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Return (clean values, field errors). Pure except for the instrument lookup.
    A field given as _MISSING is skipped (its door already reported it)."""
    f = {"timeframe": DEFAULT_SIGNAL_TIMEFRAME, "source": "manual", "note": "", "expires_at": None,
         "targets": None, "stop_rule": None, "trigger": None, "external_id": None, "created_at": None}
    f.update(fields)
    for required in ("symbol", "direction", "entry_price", "stop_loss", "confidence"):
        f.setdefault(required, _MISSING)
    f.setdefault("take_profit", None if f["targets"] not in (None, _MISSING) else _MISSING)
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {"instrument": _instrument(f["symbol"], errors)}
    _levels(f, clean, errors)
    clean["confidence"] = _confidence(f["confidence"], errors)
    _texts(f, clean, errors)
    created_at = now
    if f["created_at"] not in (None, _MISSING):
        created_at = _aware(f["created_at"], "created_at", errors) or now
        if created_at > now + dt.timedelta(minutes=1):
            errors["created_at"] = ["Must not be in the future."]
    clean["created_at"] = created_at
    expires_at = f["expires_at"]
    if expires_at not in (None, _MISSING):
        expires_at = _aware(expires_at, "expires_at", errors)
        if expires_at is not None and expires_at <= created_at:
            errors["expires_at"] = ["Must be in the future." if created_at is now else "Must be after created_at."]
    clean["expires_at"] = None if expires_at is _MISSING else expires_at
    clean["trigger"] = _trigger(f["trigger"], errors)
    return clean, errors


def signal_validate(*, unparsed: Iterable[str] = (), **fields: Any) -> dict[str, list[str]]:
    """Dry-run the creation rules: field errors (empty when the input is valid).

    A door that parsed some fields and not others passes the parsed ones and names
    the others in `unparsed`: rules about those (and about absent required fields)
    are skipped, since the door reports them, so one answer names every bad field.
    """
    fields.update(dict.fromkeys(unparsed, _MISSING))
    _, errors = _validate(fields, now=timezone.now())
    return errors


def _fingerprint(payload: dict[str, Any]) -> str:
    # Decimals by value, so a retry sending 100 where the first sent "100.0" matches.
    payload = {k: format(v.normalize(), "f") if isinstance(v, Decimal) else v for k, v in payload.items()}
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_signal_creation() -> None:
    """Serialize signal inserts so ids become visible in commit order.

    PostgreSQL hands out sequence values at INSERT time, so without this two
    transactions could commit ids 11 then 10 and a reader that already saw 11 would
    never ask for 10. The transaction-scoped advisory lock is released by COMMIT, so
    the next writer gets its id only after ours is visible. SQLite already allows one
    writer at a time (IMMEDIATE transactions), which gives the same guarantee.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SIGNAL_CREATE_LOCK_KEY])


def _existing(clean: dict[str, Any]) -> Signal | None:
    """The signal an earlier call made for the same trigger or external id, if any."""
    trigger = clean["trigger"]
    if trigger is not None:
        found = Signal.objects.filter(trigger_config_id=trigger["trigger_config_id"],
                                      trigger_candle_open_time=trigger["trigger_candle_open_time"]).first()
        if found is not None:
            return found
    if clean["external_id"] is not None:
        return Signal.objects.filter(external_id=clean["external_id"]).first()
    return None


def signal_create(
    *,
    symbol: str,
    direction: str,
    entry_price: Any,
    stop_loss: Any,
    take_profit: Any = None,
    confidence: Any,
    timeframe: str = DEFAULT_SIGNAL_TIMEFRAME,
    source: str = "manual",
    note: str = "",
    expires_at: dt.datetime | None = None,
    targets: list[dict[str, Any]] | None = None,
    stop_rule: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    external_id: str | None = None,
    created_at: dt.datetime | None = None,
    created_by=None,
    idempotency_key: str | None = None,
) -> SignalCreateResult:
    """Validate and insert one signal with an `open` outcome; broadcast on commit.

    Returns the new signal (created=True), or the signal an earlier call made
    (created=False) for a repeated idempotency key with the same body, a repeated
    trigger (config id, candle open time) or a repeated external_id.
    `created_at` is for imports of signals published elsewhere; default now.
    Raises SignalValidationError (field errors) or IdempotencyConflict.
    """
    now = timezone.now()
    clean, errors = _validate(dict(
        symbol=symbol, direction=direction, entry_price=entry_price, stop_loss=stop_loss,
        take_profit=take_profit, confidence=confidence, timeframe=timeframe, source=source, note=note,
        expires_at=expires_at, targets=targets, stop_rule=stop_rule, trigger=trigger,
        external_id=external_id, created_at=created_at,
    ), now=now)
    if idempotency_key is not None:
        if created_by is None or not getattr(created_by, "pk", None):
            errors.setdefault("idempotency_key", []).append("Idempotency keys need an authenticated user.")
        elif not (1 <= len(idempotency_key) <= 255):
            errors.setdefault("idempotency_key", []).append("Must be 1 to 255 characters.")
    if errors:
        raise SignalValidationError(errors)

    instrument: Instrument = clean.pop("instrument")
    trigger_columns = clean.pop("trigger") or {}
    fingerprint = None
    if idempotency_key is not None:
        # The body, not the moment: a retry a second later is the same request.
        body = {k: v for k, v in clean.items() if k != "created_at" or created_at is not None}
        fingerprint = _fingerprint({"symbol": instrument.symbol, **body, **trigger_columns})

    try:
        with transaction.atomic():
            _lock_signal_creation()
            if idempotency_key is not None:
                record = (IdempotencyRecord.objects.select_related("signal")
                          .filter(user=created_by, key=idempotency_key).first())
                if record is not None:
                    if record.fingerprint != fingerprint:
                        raise IdempotencyConflict(
                            "This Idempotency-Key was already used with a different request body; "
                            "use a new key for a new signal."
                        )
                    return SignalCreateResult(signal=record.signal, created=False)
            existing = _existing({**clean, "trigger": trigger_columns or None})
            if existing is not None:
                return SignalCreateResult(signal=existing, created=False)
            signal = Signal.objects.create(
                instrument=instrument,
                symbol=instrument.symbol,
                market=instrument.market,
                created_by=created_by if getattr(created_by, "pk", None) else None,
                **clean,
                **trigger_columns,
            )
            SignalOutcome.objects.create(signal=signal, status=OutcomeStatus.OPEN, stop_price=signal.stop_loss)
            # A new signal has no amendments: say so, so the payload built for the
            # doorbell and for the API answer does not ask (two queries per POST).
            signal._prefetched_objects_cache = {"events": SignalEvent.objects.none()}
            stats_count_signal(signal)
            if idempotency_key is not None:
                IdempotencyRecord.objects.create(
                    user=created_by, key=idempotency_key, fingerprint=fingerprint, signal=signal
                )
            signal_broadcast_on_commit(signal)
            transaction.on_commit(lambda: SIGNALS_CREATED.labels(source=signal.source).inc())
    except IntegrityError:
        # SQLite has no advisory lock and a unique key may have been taken by a writer
        # in another process between our lookup and insert: the first one wins.
        existing = _existing({**clean, "trigger": trigger_columns or None})
        if existing is None:
            raise
        return SignalCreateResult(signal=existing, created=False)
    return SignalCreateResult(signal=signal, created=True)
