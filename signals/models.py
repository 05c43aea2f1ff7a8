"""Instruments and permanent signals.

A Signal's content is written once and never changes; the database itself refuses
DELETE, TRUNCATE and UPDATE on it (see migrations/0002_immutability_triggers).
What the pipeline learns later (take-profit hit, stop hit, expiry) lives in
SignalOutcome, a separate row that may only move forward from `open` to a closed
status, so the signal's content and its outcome can never be confused.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ImmutableSignalError(Exception):
    """Raised when code tries to delete or edit a signal's content."""


class Market(models.TextChoices):
    CRYPTO = "crypto", "Crypto"
    FOREX = "forex", "Forex"


class Direction(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class OutcomeStatus(models.TextChoices):
    OPEN = "open", "Open"
    TP_HIT = "tp_hit", "Take-profit hit"
    SL_HIT = "sl_hit", "Stop-loss hit"
    EXPIRED = "expired", "Expired"


class Instrument(models.Model):
    symbol = models.CharField(max_length=32, unique=True)
    market = models.CharField(max_length=16, choices=Market.choices, db_index=True)
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    tick_size = models.DecimalField(max_digits=20, decimal_places=10, default="0.01")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.market})"


class SignalQuerySet(models.QuerySet):
    def delete(self):  # noqa: D401 - refuse, loudly
        raise ImmutableSignalError("Signals are permanent: they can never be deleted.")

    def update(self, **kwargs):
        raise ImmutableSignalError("Signals are permanent: their content can never be edited.")

    # bulk_update would bypass save(); refuse it as well.
    def bulk_update(self, objs, fields, batch_size=None):
        raise ImmutableSignalError("Signals are permanent: their content can never be edited.")


class Signal(models.Model):
    id = models.BigAutoField(primary_key=True)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="signals")
    # symbol/market are copied from the instrument at creation so a signal keeps the
    # facts it was published with, and list filters need no join.
    symbol = models.CharField(max_length=32)
    market = models.CharField(max_length=16, choices=Market.choices)
    direction = models.CharField(max_length=5, choices=Direction.choices)
    entry_price = models.DecimalField(max_digits=24, decimal_places=10)
    stop_loss = models.DecimalField(max_digits=24, decimal_places=10)
    take_profit = models.DecimalField(max_digits=24, decimal_places=10)
    confidence = models.PositiveSmallIntegerField()
    timeframe = models.CharField(max_length=8, default="1h")
    source = models.CharField(max_length=64, default="manual")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = SignalQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["symbol", "-id"], name="signal_symbol_id"),
            models.Index(fields=["market", "-id"], name="signal_market_id"),
            models.Index(fields=["source", "-id"], name="signal_source_id"),
            models.Index(fields=["direction", "-id"], name="signal_direction_id"),
            models.Index(fields=["created_at"], name="signal_created_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0, confidence__lte=100), name="signal_confidence_0_100"
            ),
            models.CheckConstraint(
                condition=models.Q(entry_price__gt=0, stop_loss__gt=0, take_profit__gt=0),
                name="signal_prices_positive",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        direction="long",
                        stop_loss__lt=models.F("entry_price"),
                        take_profit__gt=models.F("entry_price"),
                    )
                    | models.Q(
                        direction="short",
                        stop_loss__gt=models.F("entry_price"),
                        take_profit__lt=models.F("entry_price"),
                    )
                ),
                name="signal_levels_match_direction",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.direction} {self.symbol} @ {self.entry_price}"

    def save(self, *args, **kwargs):
        # A signal is saved exactly once, as an INSERT. An instance loaded from the
        # database, or one built with an explicit id (which Django would try as an
        # UPDATE first), would overwrite a published signal.
        if self.pk is not None and not (self._state.adding and kwargs.get("force_insert")):
            raise ImmutableSignalError("Signals are permanent: their content can never be edited.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableSignalError("Signals are permanent: they can never be deleted.")


class SignalOutcomeQuerySet(models.QuerySet):
    def delete(self):
        raise ImmutableSignalError("Signal outcomes are permanent: they can never be deleted.")


class SignalOutcome(models.Model):
    """The only mutable part of a signal: filled in once by outcome tracking."""

    signal = models.OneToOneField(Signal, primary_key=True, on_delete=models.PROTECT, related_name="outcome")
    status = models.CharField(max_length=8, choices=OutcomeStatus.choices, default=OutcomeStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    exit_price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    r_multiple = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    objects = SignalOutcomeQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status"], name="outcome_status")]

    def __str__(self) -> str:
        return f"outcome of #{self.signal_id}: {self.status}"

    def delete(self, *args, **kwargs):
        raise ImmutableSignalError("Signal outcomes are permanent: they can never be deleted.")


class IdempotencyRecord(models.Model):
    """Remembers which signal a client's Idempotency-Key produced, per user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]
