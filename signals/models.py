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

from .prices import decimal_str


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
    CLOSED = "closed", "Closed by the publisher"
    CANCELLED = "cancelled", "Cancelled by the publisher"


# A leg of SignalOutcome.legs takes the same statuses as the whole outcome (for a leg
# `sl_hit` means "closed by the stop in force", which may sit above entry by then).
LegStatus = OutcomeStatus


class StopRuleType(models.TextChoices):
    FIXED = "fixed", "Fixed"
    BREAKEVEN = "breakeven", "Breakeven after target k"
    TRAIL_TARGETS = "trail_targets", "Trail to the previous target"
    TRAILING = "trailing", "Trailing by percent"


class EventType(models.TextChoices):
    MOVE_STOP = "move_stop", "Move stop"
    CLOSE = "close", "Close"
    CANCEL = "cancel", "Cancel"


def default_stop_rule() -> dict:
    return {"type": StopRuleType.FIXED.value}


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


class _PermanentQuerySet(models.QuerySet):
    """Refuses every bulk delete or edit; `noun` names the rows in the message."""

    noun = "Rows"

    def delete(self):  # noqa: D401 - refuse, loudly
        raise ImmutableSignalError(f"{self.noun} are permanent: they can never be deleted.")

    def update(self, **kwargs):
        raise ImmutableSignalError(f"{self.noun} are permanent: their content can never be edited.")

    # bulk_update would bypass save(); refuse it as well.
    def bulk_update(self, objs, fields, batch_size=None):
        raise ImmutableSignalError(f"{self.noun} are permanent: their content can never be edited.")


class _PermanentModel(models.Model):
    """A row written exactly once, as an INSERT, and never deleted."""

    noun = "Rows"

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # An instance loaded from the database, or one built with an explicit id (which
        # Django would try as an UPDATE first), would overwrite a published row.
        if self.pk is not None and not (self._state.adding and kwargs.get("force_insert")):
            raise ImmutableSignalError(f"{self.noun} are permanent: their content can never be edited.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableSignalError(f"{self.noun} are permanent: they can never be deleted.")


class SignalQuerySet(_PermanentQuerySet):
    noun = "Signals"


class Signal(_PermanentModel):
    noun = "Signals"

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
    # The take-profit ladder [{"price": "<decimal>", "portion": "<decimal>"}], nearest
    # first; take_profit is always the last target's price. Rows written before ladders
    # existed hold [] and mean one target at take_profit (see `target_ladder`).
    targets = models.JSONField(default=list, blank=True)
    # How the stop moves by itself as targets are reached (see docs/methodology.md).
    stop_rule = models.JSONField(default=default_stop_rule, blank=True)
    # What made an automated signal: the strategy config and the closed candle it
    # evaluated. Unique together, so a rerun or a second worker never makes a second one.
    trigger_config_id = models.BigIntegerField(null=True, blank=True)
    trigger_timeframe = models.CharField(max_length=8, null=True, blank=True)
    trigger_candle_open_time = models.DateTimeField(null=True, blank=True)
    # A publisher's own id for the signal (imports, inbound alerts): unique when given.
    external_id = models.CharField(max_length=128, null=True, blank=True, unique=True)

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
            models.UniqueConstraint(
                fields=["trigger_config_id", "trigger_candle_open_time"], name="signal_trigger_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.direction} {self.symbol} @ {decimal_str(self.entry_price)}"

    @property
    def target_ladder(self) -> list[dict[str, str]]:
        """The ladder as stored, or the single implied target of a pre-ladder row."""
        if self.targets:
            return list(self.targets)
        return [{"price": format(self.take_profit.normalize(), "f"), "portion": "1"}]


class SignalOutcomeQuerySet(models.QuerySet):
    def delete(self):
        raise ImmutableSignalError("Signal outcomes are permanent: they can never be deleted.")


class SignalOutcome(models.Model):
    """The only mutable part of a signal: filled in once by outcome tracking."""

    signal = models.OneToOneField(Signal, primary_key=True, on_delete=models.PROTECT, related_name="outcome")
    status = models.CharField(max_length=16, choices=OutcomeStatus.choices, default=OutcomeStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    exit_price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    r_multiple = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # One entry per target: {"target", "portion", "status", "closed_at", "exit_price", "r"}
    # ([] until the tracker first writes; readers derive the open legs from the ladder).
    legs = models.JSONField(default=list, blank=True)
    # The stop in force now (original, moved by the stop rule or a move_stop amendment);
    # null until the tracker or an amendment first sets it (then it is the original stop).
    stop_price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    # The tape (trades or candles) has been applied up to this instant.
    evaluated_until = models.DateTimeField(null=True, blank=True)
    # The engine's own bookkeeping (trailing peak, a stop move pending for the next trade).
    state = models.JSONField(default=dict, blank=True)
    # Maximum favourable / adverse excursion so far, in R against the original stop.
    mfe_r = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    mae_r = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    objects = SignalOutcomeQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status"], name="outcome_status")]

    def __str__(self) -> str:
        return f"outcome of #{self.signal_id}: {self.status}"

    def delete(self, *args, **kwargs):
        raise ImmutableSignalError("Signal outcomes are permanent: they can never be deleted.")


class SignalEventQuerySet(_PermanentQuerySet):
    noun = "Signal events"


class SignalEvent(_PermanentModel):
    """An amendment to a published signal (move the stop, close, cancel).

    The signal itself never changes: each amendment is a new row, as permanent as the
    signal (the database refuses DELETE, UPDATE and TRUNCATE), so the record shows what
    was published and exactly when it was amended.
    """

    noun = "Signal events"
    id = models.BigAutoField(primary_key=True)
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=16, choices=EventType.choices)
    price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = SignalEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["signal", "id"], name="signalevent_signal_id")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__isnull=True) | models.Q(price__gt=0), name="signalevent_price_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"event #{self.id} {self.type} on signal #{self.signal_id}"


class UserReceipt(models.Model):
    """The last signal id a user's dashboard acknowledged (monotonic)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signal_receipt")
    last_ack_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} saw up to #{self.last_ack_id}"


class IdempotencyRecord(models.Model):
    """Remembers which signal a client's Idempotency-Key produced, per user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    signal = models.ForeignKey(Signal, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]


class SourceDayStats(models.Model):
    """Per source and UTC day of signal creation: what /api/stats/ sums.

    Maintained in the same transaction as the write it counts (signal_create and
    every outcome close), so statistics never scan the signals table; rebuilt from
    scratch by `signals.services.stats.stats_rebuild`. Derived data: not permanent.
    docs/methodology.md defines each count.
    """

    source = models.CharField(max_length=64)
    day = models.DateField()
    signals = models.PositiveIntegerField(default=0)
    closed = models.PositiveIntegerField(default=0)  # decided with an R (not open, not cancelled)
    wins = models.PositiveIntegerField(default=0)
    losses = models.PositiveIntegerField(default=0)
    breakeven = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    r_sum = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    excursions = models.PositiveIntegerField(default=0)  # closed signals with MFE/MAE known
    mfe_sum = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    mae_sum = models.DecimalField(max_digits=20, decimal_places=4, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "day"], name="sourcedaystats_source_day")]
        indexes = [models.Index(fields=["day"], name="sourcedaystats_day")]


class SourceDayLegStats(models.Model):
    """Per source, UTC creation day and target number: legs of closed signals."""

    source = models.CharField(max_length=64)
    day = models.DateField()
    target = models.PositiveSmallIntegerField()  # 1 = the nearest target
    eligible = models.PositiveIntegerField(default=0)  # closed signals that had this target
    reached = models.PositiveIntegerField(default=0)  # ... whose leg hit it
    r_sum = models.DecimalField(max_digits=20, decimal_places=4, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "day", "target"],
                                               name="sourcedaylegstats_source_day_target")]
        indexes = [models.Index(fields=["day"], name="sourcedaylegstats_day")]
