"""Market-data tables: OHLCV candles and the readiness state of each market.

A Candle row is unique on (instrument, timeframe, open_time) and is written by
upsert only (pipeline.services), so replays, retries and restarts converge on one
row per bucket. The first/last trade keys let a partial batch merge into the row
correctly whatever order trades arrive in (see pipeline.aggregation).
"""
from __future__ import annotations

from django.db import models

from signals.models import Instrument


class Timeframe(models.TextChoices):
    M1 = "1m", "1 minute"
    M5 = "5m", "5 minutes"
    M15 = "15m", "15 minutes"
    H1 = "1h", "1 hour"
    H4 = "4h", "4 hours"
    D1 = "1d", "1 day"


class CandleSource(models.TextChoices):
    TRADES = "trades", "Aggregated from trades"
    ROLLUP = "rollup", "Rolled up from 1m candles"
    EXCHANGE = "exchange", "Exchange kline"


class Candle(models.Model):
    id = models.BigAutoField(primary_key=True)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="candles")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    open_time = models.DateTimeField()
    open = models.DecimalField(max_digits=24, decimal_places=10)
    high = models.DecimalField(max_digits=24, decimal_places=10)
    low = models.DecimalField(max_digits=24, decimal_places=10)
    close = models.DecimalField(max_digits=24, decimal_places=10)
    volume = models.DecimalField(max_digits=32, decimal_places=12)
    trades = models.BigIntegerField(default=0)
    # (time ms, trade id) of the trades that set open and close: the merge keeps the
    # earliest open and the latest close, whatever order partial batches arrive in.
    first_trade_ms = models.BigIntegerField()
    first_trade_id = models.BigIntegerField()
    last_trade_ms = models.BigIntegerField()
    last_trade_id = models.BigIntegerField()
    # Open (still forming) vs closed (its time is over). A closed exchange kline is
    # final: later trades never change it.
    closed = models.BooleanField(default=False)
    source = models.CharField(max_length=8, choices=CandleSource.choices, default=CandleSource.TRADES)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["instrument", "timeframe", "open_time"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "timeframe", "open_time"], name="candle_bucket_unique"),
        ]
        indexes = [
            # Closing the rows whose time is over touches only the few open rows.
            models.Index(fields=["instrument", "timeframe", "open_time"], name="candle_open_rows",
                         condition=models.Q(closed=False)),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class ReadinessState(models.TextChoices):
    WAITING_DATA = "WAITING_DATA", "Waiting for data"
    CHECKING_DATA = "CHECKING_DATA", "Checking data"
    READY = "READY", "Ready"
    ACTIVE = "ACTIVE", "Active"
    ERROR = "ERROR", "Error"
    STOPPED = "STOPPED", "Stopped"


class MarketReadiness(models.Model):
    """Whether a market's data is trustworthy enough to trade on, and why."""

    market = models.CharField(max_length=16, unique=True)
    state = models.CharField(max_length=16, choices=ReadinessState.choices, default=ReadinessState.WAITING_DATA)
    reason = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["market"]
        verbose_name_plural = "market readiness"

    def __str__(self) -> str:
        return f"{self.market}: {self.state}"


class HealthSnapshot(models.Model):
    """One scored health check (pipeline.health), stored every 30 s by beat.

    The one table that may be pruned: /health/ serves the newest row and the history
    (HEALTH_HISTORY_HOURS) shows how the score moved; nothing else depends on it.
    """

    created_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=8)
    score = models.PositiveSmallIntegerField()
    components = models.JSONField()
    # The measured facts the score was computed from (for operators asking "why").
    facts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.status} {self.score}"


class FeedLease(models.Model):
    """Which `run_feed` process is the active one (one row per feed name).

    A row in the database rather than a Redis lock: the database is the one thing
    every feed of a deployment shares (SQLite or PostgreSQL alike), and a Redis
    restart must not let a second feed start streaming. The holder renews
    `heartbeat_at`; a standby takes the row over by a conditional UPDATE once the
    heartbeat is older than the lease (pipeline.services.feed_lease_acquire).
    """

    name = models.CharField(max_length=32, unique=True)
    holder = models.CharField(max_length=128)
    acquired_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder}"


class StrategyConfig(models.Model):
    """One strategy run on one symbol and timeframe with its parameters.

    Editable and switchable (enabled), unlike the signals it makes: those carry the
    config's id in `trigger_config_id`, and a config that made signals is never
    deleted (disable it instead), so every automated signal can be traced back.
    `last_candle_open_time` is how far the runner got; `last_evaluated_at` when.
    """

    id = models.BigAutoField(primary_key=True)
    strategy = models.CharField(max_length=64)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="strategy_configs")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    cooldown_minutes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_candle_open_time = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["instrument", "timeframe"], name="strategy_config_series",
                                condition=models.Q(enabled=True))]

    def __str__(self) -> str:
        return f"{self.strategy} {self.instrument.symbol} {self.timeframe}"

