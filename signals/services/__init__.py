"""Writes (HackSoft-style services), one module per concern; import from here.

`signal_create` is the single way a signal comes into existence; amendments,
outcome progress and receipts each have one function too.
"""
from ..prices import PRICE_DECIMAL_PLACES
from ..timeframes import SIGNAL_TIMEFRAMES as TIMEFRAMES
from .create import (
    MAX_NOTE_LENGTH,
    IdempotencyConflict,
    SignalCreateResult,
    SignalValidationError,
    signal_create,
    signal_validate,
)
from .events import AmendmentRefused, signal_event_create
from .instruments import DEMO_INSTRUMENTS, demo_instruments_seed, instrument_upsert
from .outcomes import r_of, signal_outcome_close, signal_outcome_progress
from .receipts import receipt_ack

__all__ = [
    "PRICE_DECIMAL_PLACES", "TIMEFRAMES", "MAX_NOTE_LENGTH", "IdempotencyConflict", "SignalCreateResult",
    "SignalValidationError", "signal_create", "signal_validate", "AmendmentRefused", "signal_event_create",
    "DEMO_INSTRUMENTS", "demo_instruments_seed", "instrument_upsert", "r_of", "signal_outcome_close",
    "signal_outcome_progress", "receipt_ack",
]
