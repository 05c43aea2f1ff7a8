"""Writes. `signal_create` is the single way a signal comes into existence.

Every caller (admin form, REST API, pipeline strategies, management commands) goes
through it, so validation, serialization of ids, idempotency and the broadcast are
identical whatever the door.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .broadcast import signal_broadcast_on_commit, outcome_broadcast_on_commit
from .metrics import SIGNALS_CREATED
from .models import (
    Direction,
    IdempotencyRecord,
    Instrument,
    OutcomeStatus,
    Signal,
    SignalOutcome,
)

# Arbitrary constant naming our advisory lock; one lock serializes all signal inserts.
_SIGNAL_CREATE_LOCK_KEY = 0x5167_4E41  # "SgNA"
MAX_NOTE_LENGTH = 2000
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
# The price columns are NUMERIC(24, 10): more decimals would be rounded silently by
# the database (1e-11 even to 0), so the broadcast copy would differ from the row.
PRICE_DECIMAL_PLACES = 10
_MAX_PRICE = Decimal("1e14")
# Plain ASCII numerals only: Decimal() alone also accepts "1_000", "١٠٠" and spaces.
_NUMERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|snan|inf|infinity)", re.I | re.A)
# r_multiple is NUMERIC(12, 4); a stop a hair away from the entry could overflow it.
_MAX_R_MULTIPLE = Decimal("99999999.9999")


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


def _to_decimal(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
    if value is None or value == "":
        errors.setdefault(field, []).append("This field is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        errors.setdefault(field, []).append("A valid number is required.")
        return None
    try:
        text = str(value)
    except ValueError:  # an int too long to print (Python's 4300-digit limit)
        errors.setdefault(field, []).append("Price is too large.")
        return None
    if not _NUMERAL.fullmatch(text):
        errors.setdefault(field, []).append("A valid number is required.")
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent beyond Decimal's range
        errors.setdefault(field, []).append("A valid number is required.")
        return None
    if not number.is_finite():
        errors.setdefault(field, []).append("A finite number is required.")
        return None
    if number <= 0:
        errors.setdefault(field, []).append("Must be a positive price.")
        return None
    if number >= _MAX_PRICE:
        errors.setdefault(field, []).append("Price is too large.")
        return None
    if number != number.quantize(Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)):
        errors.setdefault(field, []).append(f"At most {PRICE_DECIMAL_PLACES} decimal places are allowed.")
        return None
    return number


def _has_nul(value: Any) -> bool:
    # PostgreSQL text cannot hold NUL; catching it here keeps it a field error.
    return isinstance(value, str) and "\x00" in value


def _validate(
    *,
    symbol: Any,
    direction: Any,
    entry_price: Any,
    stop_loss: Any,
    take_profit: Any,
    confidence: Any,
    timeframe: Any,
    source: Any,
    note: Any,
    expires_at: Any,
    now: dt.datetime,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Return (clean values, field errors). Pure except for the instrument lookup."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}

    instrument = None
    if not symbol or not isinstance(symbol, str):
        errors["symbol"] = ["This field is required."]
    elif _has_nul(symbol):
        errors["symbol"] = [f"Unknown symbol {symbol!r}."]
    else:
        instrument = Instrument.objects.filter(symbol=symbol.strip().upper()).first()
        if instrument is None:
            errors["symbol"] = [f"Unknown symbol '{symbol}'."]
        elif not instrument.active:
            errors["symbol"] = [f"Symbol '{instrument.symbol}' is not active."]
    clean["instrument"] = instrument

    if direction not in Direction.values:
        errors["direction"] = ["Must be 'long' or 'short'."]
    clean["direction"] = direction

    entry = _to_decimal(entry_price, "entry_price", errors)
    stop = _to_decimal(stop_loss, "stop_loss", errors)
    take = _to_decimal(take_profit, "take_profit", errors)
    if None not in (entry, stop, take) and direction in Direction.values:
        is_long = direction == Direction.LONG
        side = "long" if is_long else "short"
        if (stop >= entry) if is_long else (stop <= entry):
            where = "below" if is_long else "above"
            errors.setdefault("stop_loss", []).append(
                f"For a {side} signal the stop-loss must be {where} the entry price."
            )
        if (take <= entry) if is_long else (take >= entry):
            where = "above" if is_long else "below"
            errors.setdefault("take_profit", []).append(
                f"For a {side} signal the take-profit must be {where} the entry price."
            )
    clean.update(entry_price=entry, stop_loss=stop, take_profit=take)

    if isinstance(confidence, bool) or confidence is None:
        errors["confidence"] = ["An integer from 0 to 100 is required."]
    else:
        try:
            conf = int(str(confidence))
        except ValueError:
            errors["confidence"] = ["An integer from 0 to 100 is required."]
        else:
            if not 0 <= conf <= 100:
                errors["confidence"] = ["Must be between 0 and 100."]
            clean["confidence"] = conf

    if timeframe not in TIMEFRAMES:
        errors["timeframe"] = [f"Must be one of {', '.join(TIMEFRAMES)}."]
    clean["timeframe"] = timeframe

    if not isinstance(source, str) or not source.strip() or len(source) > 64 or _has_nul(source):
        errors["source"] = ["A source name of 1 to 64 characters is required."]
    clean["source"] = source.strip() if isinstance(source, str) else source

    note = "" if note is None else note
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        errors["note"] = [f"Must be text of at most {MAX_NOTE_LENGTH} characters."]
    elif _has_nul(note):
        errors["note"] = ["Must not contain NUL characters."]
    clean["note"] = note

    if expires_at is not None:
        if not isinstance(expires_at, dt.datetime) or timezone.is_naive(expires_at):
            errors["expires_at"] = ["Must be a timezone-aware date and time."]
        elif expires_at <= now:
            errors["expires_at"] = ["Must be in the future."]
        else:
            # Store and broadcast in UTC, as the database hands it back on every read.
            expires_at = expires_at.astimezone(dt.timezone.utc)
    clean["expires_at"] = expires_at
    return clean, errors


def signal_validate(**fields: Any) -> dict[str, list[str]]:
    """Dry-run the creation rules: field errors (empty when the input is valid).
    Lets forms show errors next to fields before anything is written."""
    fields.setdefault("timeframe", "1h")
    fields.setdefault("source", "manual")
    fields.setdefault("note", "")
    fields.setdefault("expires_at", None)
    _, errors = _validate(now=timezone.now(), **fields)
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


def signal_create(
    *,
    symbol: str,
    direction: str,
    entry_price: Any,
    stop_loss: Any,
    take_profit: Any,
    confidence: Any,
    timeframe: str = "1h",
    source: str = "manual",
    note: str = "",
    expires_at: dt.datetime | None = None,
    created_by=None,
    idempotency_key: str | None = None,
) -> SignalCreateResult:
    """Validate and insert one signal with an `open` outcome; broadcast on commit.

    Returns the new signal (created=True), or, for a repeated idempotency key with
    the same body, the signal the first request created (created=False).
    Raises SignalValidationError (field errors) or IdempotencyConflict.
    """
    now = timezone.now()
    clean, errors = _validate(
        symbol=symbol,
        direction=direction,
        entry_price=entry_price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        confidence=confidence,
        timeframe=timeframe,
        source=source,
        note=note,
        expires_at=expires_at,
        now=now,
    )
    if idempotency_key is not None:
        if created_by is None or not getattr(created_by, "pk", None):
            errors.setdefault("idempotency_key", []).append("Idempotency keys need an authenticated user.")
        elif not (1 <= len(idempotency_key) <= 255):
            errors.setdefault("idempotency_key", []).append("Must be 1 to 255 characters.")
    if errors:
        raise SignalValidationError(errors)

    instrument: Instrument = clean.pop("instrument")
    fingerprint = None
    if idempotency_key is not None:
        fingerprint = _fingerprint({"symbol": instrument.symbol, **clean})

    with transaction.atomic():
        _lock_signal_creation()
        if idempotency_key is not None:
            record = (
                IdempotencyRecord.objects.select_related("signal")
                .filter(user=created_by, key=idempotency_key)
                .first()
            )
            if record is not None:
                if record.fingerprint != fingerprint:
                    raise IdempotencyConflict(
                        "This Idempotency-Key was already used with a different request body; "
                        "use a new key for a new signal."
                    )
                return SignalCreateResult(signal=record.signal, created=False)
        signal = Signal.objects.create(
            instrument=instrument,
            symbol=instrument.symbol,
            market=instrument.market,
            created_at=now,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            **clean,
        )
        SignalOutcome.objects.create(signal=signal, status=OutcomeStatus.OPEN)
        if idempotency_key is not None:
            IdempotencyRecord.objects.create(
                user=created_by, key=idempotency_key, fingerprint=fingerprint, signal=signal
            )
        signal_broadcast_on_commit(signal)
        transaction.on_commit(lambda: SIGNALS_CREATED.labels(source=signal.source).inc())
    return SignalCreateResult(signal=signal, created=True)


def _exit_price(value: Any) -> Decimal:
    """A market price as the column stores it (int, float, str or Decimal accepted)."""
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"Not a price: {value!r}") from None
    if not price.is_finite() or price <= 0 or price >= _MAX_PRICE:
        raise ValueError(f"An exit price must be a positive finite number below {_MAX_PRICE}: {value!r}")
    # Round like the NUMERIC(24, 10) column would, so the broadcast equals the row.
    return price.quantize(Decimal(1).scaleb(-PRICE_DECIMAL_PLACES))


def signal_outcome_close(
    *,
    signal_id: int,
    status: str,
    exit_price: Decimal,
    closed_at: dt.datetime | None = None,
) -> SignalOutcome | None:
    """Move an open outcome to a closed status, once. Returns it, or None if it was
    already closed (safe to run twice: the conditional UPDATE only matches `open`)."""
    if status not in (OutcomeStatus.TP_HIT, OutcomeStatus.SL_HIT, OutcomeStatus.EXPIRED):
        raise ValueError(f"Not a closing status: {status!r}")
    exit_price = _exit_price(exit_price)
    closed_at = closed_at or timezone.now()
    with transaction.atomic():
        signal = Signal.objects.get(pk=signal_id)
        risk = abs(signal.entry_price - signal.stop_loss)
        move = exit_price - signal.entry_price
        if signal.direction == Direction.SHORT:
            move = -move
        r_multiple = max(-_MAX_R_MULTIPLE, min(_MAX_R_MULTIPLE, move / risk)) if risk else Decimal("0")
        r_multiple = r_multiple.quantize(Decimal("0.0001"))
        updated = SignalOutcome.objects.filter(signal_id=signal_id, status=OutcomeStatus.OPEN).update(
            status=status, closed_at=closed_at, exit_price=exit_price, r_multiple=r_multiple
        )
        if not updated:
            return None
        outcome = SignalOutcome.objects.get(signal_id=signal_id)
        outcome_broadcast_on_commit(outcome)
    return outcome


def instrument_upsert(*, symbol: str, market: str, base: str, quote: str, tick_size: str = "0.01") -> Instrument:
    """Create or update an instrument by symbol (instruments are editable)."""
    instrument, _ = Instrument.objects.update_or_create(
        symbol=symbol.upper(),
        defaults={"market": market, "base": base, "quote": quote, "tick_size": Decimal(tick_size)},
    )
    return instrument


DEMO_INSTRUMENTS = (
    ("BTCUSDT", "crypto", "BTC", "USDT", "0.01"),
    ("ETHUSDT", "crypto", "ETH", "USDT", "0.01"),
    ("SOLUSDT", "crypto", "SOL", "USDT", "0.001"),
    ("USDCOP", "forex", "USD", "COP", "0.01"),
)


def demo_instruments_seed() -> list[Instrument]:
    """Ensure the demo instruments exist; safe to run twice."""
    return [
        Instrument.objects.get_or_create(
            symbol=s, defaults={"market": m, "base": b, "quote": q, "tick_size": Decimal(t)}
        )[0]
        for s, m, b, q, t in DEMO_INSTRUMENTS
    ]

