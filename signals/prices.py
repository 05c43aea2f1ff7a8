"""The one rule for turning text or numbers into a stored price.

Prices live in NUMERIC(24, 10) columns: more decimals would be rounded silently by
the database (1e-11 even to 0), so the broadcast copy would differ from the row.
The API serializer, the admin form and the service all parse through `price_parse`.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

PRICE_DECIMAL_PLACES = 10
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)
MAX_PRICE = Decimal("1e14")
# Plain ASCII numerals only: Decimal() alone also accepts "1_000", "١٠٠" and spaces.
_NUMERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|snan|inf|infinity)", re.I | re.A)


class PriceError(ValueError):
    """The value is not an acceptable price; str() is the message for the user."""


def decimal_parse(value: Any) -> Decimal:
    """A finite Decimal from an int, float, Decimal or plain numeral string.
    Raises PriceError with a user-facing message."""
    if value is None or value == "":
        raise PriceError("This field is required.")
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise PriceError("A valid number is required.")
    try:
        text = str(value)
    except ValueError:  # an int too long to print (Python's 4300-digit limit)
        raise PriceError("Price is too large.") from None
    if not _NUMERAL.fullmatch(text):
        raise PriceError("A valid number is required.")
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent beyond Decimal's range
        raise PriceError("A valid number is required.") from None
    if not number.is_finite():
        raise PriceError("A finite number is required.")
    return number


def price_parse(value: Any) -> Decimal:
    """A positive price below MAX_PRICE with at most PRICE_DECIMAL_PLACES decimals."""
    number = decimal_parse(value)
    if number <= 0:
        raise PriceError("Must be a positive price.")
    if number >= MAX_PRICE:
        raise PriceError("Price is too large.")
    if number != number.quantize(PRICE_QUANTUM):
        raise PriceError(f"At most {PRICE_DECIMAL_PLACES} decimal places are allowed.")
    return number


def price_quantize(value: Any) -> Decimal:
    """A market price (trade or candle) rounded as the column stores it, so the
    broadcast equals the row. Raises ValueError for a non-positive or huge value."""
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"Not a price: {value!r}") from None
    if not price.is_finite() or price <= 0 or price >= MAX_PRICE:
        raise ValueError(f"A price must be a positive finite number below {MAX_PRICE}: {value!r}")
    return price.quantize(PRICE_QUANTUM)


def decimal_str(value: Decimal | None) -> str | None:
    """Decimals as plain strings without the column's trailing zeros ("65000.5")."""
    if value is None:
        return None
    return format(value.normalize(), "f")
