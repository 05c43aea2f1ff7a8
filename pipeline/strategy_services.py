"""Strategy configs and running them on closed candles (the I/O around the pure
strategies in pipeline.strategies).

How a closed candle becomes a signal:
- the feed process enqueues `strategies_evaluate` for a symbol as soon as it has
  written a batch that closed one of its candles, and beat runs the same task as a
  safety net (pipeline.schedule);
- for each enabled config of the symbol, every closed candle after the config's mark
  (`last_candle_open_time`) is decided over a fixed window of the stored candles
  that end with it, so the decision depends only on stored candles: a restarted or
  second worker decides exactly what an uninterrupted one would have;
- a proposal goes through `signal_create(source=<strategy>, trigger={config, candle})`,
  unique on (config, candle open time): a rerun or a racing worker gets the existing
  signal back, never a second one. The config row is locked (skip_locked) while it is
  evaluated, so two workers do not even duplicate the work.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable

from django.db import transaction
from django.utils import timezone

from signals.models import Instrument, Signal
from signals.services import SignalValidationError, signal_create

from .aggregation import TIMEFRAME_MS, dt_to_ms, ms_to_dt
from .models import StrategyConfig, Timeframe
from .strategies import Bar, Proposal, Strategy, UnknownStrategyError, params_clean, strategy_get
from .strategies.replay import window_decide, window_size
from .strategy_selectors import closed_bars, config_last_trigger_ms

logger = logging.getLogger(__name__)

MAX_COOLDOWN_MINUTES = 7 * 24 * 60
# Closed candles a config catches up on in one run after a pause (older ones are
# marked evaluated without deciding them: their moment has passed).
MAX_CATCH_UP = 50
# A proposal on a candle that closed longer ago than one candle period plus this is
# not published: the entry would be stale (a worker that was down catches up
# silently instead of flooding users with old news).
LATE_GRACE = dt.timedelta(seconds=60)
_PORTION_STEP = Decimal("0.0001")


class StrategyConfigError(Exception):
    """Bad config input; `errors` maps field -> messages (params: param -> messages)."""

    def __init__(self, errors: dict[str, Any]):
        super().__init__(str(errors))
        self.errors = errors


class StrategyConfigInUse(Exception):
    """A config that made signals cannot be deleted (disable it instead)."""


# --- configs -----------------------------------------------------------------------

def _validated(*, strategy: Any, symbol: Any, timeframe: Any, params: Any, cooldown_minutes: Any,
               enabled: Any = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(clean values, field errors): every rule, every field, at once. Accepts raw
    JSON values, so a door needs no parsing step that would report errors in rounds."""
    errors: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    try:
        spec = strategy_get(strategy)
    except UnknownStrategyError as exc:
        errors["strategy"] = [str(exc)]
    else:
        clean["strategy"] = spec.name
        clean["params"], param_errors = params_clean(spec, params)
        if param_errors:
            errors["params"] = param_errors
    instrument = None
    if isinstance(symbol, str) and symbol.strip() and "\x00" not in symbol:
        instrument = Instrument.objects.filter(symbol=symbol.strip().upper()).first()
    if instrument is None:
        errors["symbol"] = [f"Unknown symbol '{symbol}'."]
    elif not instrument.active:
        errors["symbol"] = [f"Symbol '{instrument.symbol}' is not active."]
    clean["instrument"] = instrument
    if timeframe not in Timeframe.values:
        errors["timeframe"] = [f"Must be one of {', '.join(Timeframe.values)}."]
    clean["timeframe"] = timeframe
    if isinstance(cooldown_minutes, bool) or not isinstance(cooldown_minutes, int) \
            or not 0 <= cooldown_minutes <= MAX_COOLDOWN_MINUTES:
        errors["cooldown_minutes"] = [f"An integer from 0 to {MAX_COOLDOWN_MINUTES} is required."]
    clean["cooldown_minutes"] = cooldown_minutes
    if not isinstance(enabled, bool):
        errors["enabled"] = ["Must be true or false."]
    clean["enabled"] = enabled
    return clean, errors


def strategy_config_validate(*, strategy: Any, symbol: Any, timeframe: Any, params: Any = None,
                             cooldown_minutes: Any = 0, enabled: Any = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dry-run the config rules (for forms): (clean values, field errors)."""
    return _validated(strategy=strategy, symbol=symbol, timeframe=timeframe, params=params,
                      cooldown_minutes=cooldown_minutes, enabled=enabled)


def strategy_config_create(*, strategy: str, symbol: str, timeframe: str, params: dict | None = None,
                           enabled: bool = True, cooldown_minutes: int = 0) -> StrategyConfig:
    """A new config with params completed by the strategy's defaults.
    Raises StrategyConfigError with every bad field at once."""
    clean, errors = _validated(strategy=strategy, symbol=symbol, timeframe=timeframe, params=params,
                               cooldown_minutes=cooldown_minutes, enabled=enabled)
    if errors:
        raise StrategyConfigError(errors)
    return StrategyConfig.objects.create(**clean)


_EDITABLE = ("strategy", "symbol", "timeframe", "params", "enabled", "cooldown_minutes")


def strategy_config_update(*, config_id: int, **changes: Any) -> StrategyConfig:
    """Edit or disable a config (its signals stay as they are). Params given are
    merged over the stored ones; a changed strategy starts from its defaults.
    Raises StrategyConfigError, StrategyConfig.DoesNotExist."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise StrategyConfigError({name: ["Not an editable field."] for name in sorted(unknown)})
    with transaction.atomic():
        config = StrategyConfig.objects.select_for_update().select_related("instrument").get(pk=config_id)
        strategy = changes.get("strategy", config.strategy)
        params = changes.get("params")
        if params is None:  # absent or null: keep the stored params
            params = {}
        if isinstance(params, dict):
            params = {**(config.params if strategy == config.strategy else {}), **params}
        clean, errors = _validated(
            strategy=strategy, symbol=changes.get("symbol", config.instrument.symbol),
            timeframe=changes.get("timeframe", config.timeframe), params=params,
            cooldown_minutes=changes.get("cooldown_minutes", config.cooldown_minutes),
            enabled=changes.get("enabled", config.enabled))
        if errors:
            raise StrategyConfigError(errors)
        series_changed = (clean["instrument"].pk, clean["timeframe"]) != (config.instrument_id, config.timeframe)
        for name, value in clean.items():
            setattr(config, name, value)
        if series_changed:
            # A new series starts from its newest candle, like a new config.
            config.last_candle_open_time = None
        config.save()
    return config


def strategy_config_delete(*, config_id: int) -> None:
    """Delete a config that never made a signal. Raises StrategyConfigInUse otherwise."""
    with transaction.atomic():
        config = StrategyConfig.objects.select_for_update().get(pk=config_id)
        made = Signal.objects.filter(trigger_config_id=config.pk).count()
        if made:
            raise StrategyConfigInUse(f"This config made {made} signal(s); it can be disabled, never deleted.")
        config.delete()


# Tuned for the simulator's 1m random walk: together they propose a signal every
# minute or two, with levels close enough (1 and 1.5 ATRs) that outcomes are decided
# within minutes. (strategy, symbol, timeframe, params, cooldown minutes)
DEMO_CONFIGS: tuple[tuple[str, str, str, dict[str, Any], int], ...] = (
    ("ema_crossover", "BTCUSDT", "1m", {"fast": 3, "slow": 8, "stop_atr": 1.0, "take_profit_atr": 1.5,
                                        "ladder": 2}, 5),
    ("rsi_reversal", "ETHUSDT", "1m", {"rsi_period": 7, "oversold": 35.0, "overbought": 65.0, "stop_atr": 1.0,
                                       "take_profit_atr": 1.5}, 5),
    ("bollinger_breakout", "SOLUSDT", "1m", {"period": 20, "k": 2.0, "stop_atr": 1.0, "take_profit_atr": 1.5}, 5),
    ("macd_cross", "BTCUSDT", "5m", {}, 30),
)


def demo_strategies_seed() -> tuple[list[StrategyConfig], list[str]]:
    """Create the demo configs that do not exist yet (by strategy, symbol and
    timeframe; existing ones are left as the operator set them). Returns (created,
    symbols skipped because their instrument does not exist)."""
    created, missing = [], []
    for strategy, symbol, timeframe, params, cooldown in DEMO_CONFIGS:
        if not Instrument.objects.filter(symbol=symbol).exists():
            missing.append(symbol)
            continue
        if StrategyConfig.objects.filter(strategy=strategy, instrument__symbol=symbol, timeframe=timeframe).exists():
            continue
        created.append(strategy_config_create(strategy=strategy, symbol=symbol, timeframe=timeframe, params=params,
                                              cooldown_minutes=cooldown))
    return created, sorted(set(missing))


# --- running ---------------------------------------------------------------------------

@dataclass
class RunReport:
    configs: int = 0
    candles: int = 0
    proposals: int = 0
    created: list[int] = field(default_factory=list)
    existing: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"configs": self.configs, "candles": self.candles, "proposals": self.proposals,
                "created": self.created, "existing": self.existing, "skipped": self.skipped}


def _tick_round(value: float, tick: Decimal) -> Decimal:
    tick = tick if tick and tick > 0 else Decimal("0.00000001")
    return (Decimal(repr(value)) / tick).to_integral_value(ROUND_HALF_EVEN) * tick


def _portions(count: int) -> list[Decimal]:
    """`count` equal portions as 4-decimal strings summing to exactly 1."""
    base = (Decimal(1) / count).quantize(_PORTION_STEP, rounding=ROUND_DOWN)
    return [base] * (count - 1) + [Decimal(1) - base * (count - 1)]


def proposal_fields(proposal: Proposal, tick: Decimal) -> dict[str, Any]:
    """signal_create's price fields for a proposal, rounded to the instrument's tick."""
    out: dict[str, Any] = {
        "direction": proposal.direction,
        "entry_price": _tick_round(proposal.entry, tick),
        "stop_loss": _tick_round(proposal.stop, tick),
        "take_profit": _tick_round(proposal.take_profit, tick),
        "confidence": proposal.confidence,
        "note": proposal.note,
    }
    if proposal.targets:
        portions = _portions(len(proposal.targets))
        out["targets"] = [{"price": str(_tick_round(price, tick)), "portion": str(portion)}
                          for (price, _), portion in zip(proposal.targets, portions)]
    return out


def _publish(config: StrategyConfig, strategy: Strategy, bar: Bar, proposal: Proposal, report: RunReport) -> None:
    fields = proposal_fields(proposal, config.instrument.tick_size)
    try:
        result = signal_create(
            symbol=config.instrument.symbol, timeframe=config.timeframe, source=strategy.name,
            trigger={"config_id": config.pk, "timeframe": config.timeframe,
                     "candle_open_time": ms_to_dt(bar.open_ms)},
            **fields,
        )
    except SignalValidationError as exc:
        # e.g. levels that collapse onto the entry once rounded to the tick.
        logger.warning("strategy config %s: proposal on %s refused: %s", config.pk, ms_to_dt(bar.open_ms), exc)
        report.skip("invalid")
        return
    if result.created:
        report.created.append(result.signal.pk)
        logger.info("strategy config %s (%s %s %s) made signal #%s", config.pk, strategy.name,
                    config.instrument.symbol, config.timeframe, result.signal.pk)
    else:
        report.existing += 1


def _evaluate(config: StrategyConfig, now: dt.datetime, report: RunReport) -> None:
    strategy = strategy_get(config.strategy)
    params, errors = params_clean(strategy, config.params)
    if errors:
        logger.error("strategy config %s has bad params %s; skipped", config.pk, errors)
        report.skip("bad_params")
        return
    size = window_size(strategy, params)
    period_ms = TIMEFRAME_MS[config.timeframe]
    mark = config.last_candle_open_time
    if mark is None:
        todo = closed_bars(instrument_id=config.instrument_id, timeframe=config.timeframe, limit=1)
    else:
        todo = closed_bars(instrument_id=config.instrument_id, timeframe=config.timeframe,
                           since=mark + dt.timedelta(milliseconds=1), limit=10_000)
    if not todo:
        return
    skipped_old, todo = todo[:-MAX_CATCH_UP], todo[-MAX_CATCH_UP:]
    if skipped_old:
        report.skip("too_old")
    history = closed_bars(instrument_id=config.instrument_id, timeframe=config.timeframe,
                          until=ms_to_dt(todo[-1].open_ms), limit=size + len(todo))
    position = {b.open_ms: i for i, b in enumerate(history)}
    cooldown_ms = config.cooldown_minutes * 60_000
    last_trigger = config_last_trigger_ms(config_id=config.pk)
    now_ms = dt_to_ms(now)
    for bar in todo:
        report.candles += 1
        end = position[bar.open_ms] + 1
        window = history[max(0, end - size):end]
        if len(window) < size:
            report.skip("warming_up")
            continue
        proposal = window_decide(strategy, params, window)
        if proposal is None:
            continue
        report.proposals += 1
        if last_trigger is not None and last_trigger != bar.open_ms and bar.open_ms - last_trigger < cooldown_ms:
            report.skip("cooldown")
            continue
        if now_ms - (bar.open_ms + period_ms) > period_ms + LATE_GRACE.total_seconds() * 1000:
            report.skip("late")
            continue
        _publish(config, strategy, bar, proposal, report)
        last_trigger = bar.open_ms
    config.last_candle_open_time = ms_to_dt(todo[-1].open_ms)


def strategies_run(*, symbols: Iterable[str] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Evaluate every enabled config (of `symbols`, or all) on its new closed
    candles; create the signals they propose. Safe to run twice and from several
    workers at once. Returns a report {configs, candles, proposals, created,
    existing, skipped}."""
    now = now or timezone.now()
    qs = StrategyConfig.objects.filter(enabled=True)
    if symbols is not None:
        qs = qs.filter(instrument__symbol__in=[s.upper() for s in symbols])
    report = RunReport()
    for config_id in qs.order_by("id").values_list("id", flat=True):
        with transaction.atomic():
            # skip_locked: another worker is evaluating this config right now.
            config = (StrategyConfig.objects.select_for_update(skip_locked=True, of=("self",))
                      .select_related("instrument").filter(pk=config_id, enabled=True).first())
            if config is None:
                continue
            report.configs += 1
            _evaluate(config, now, report)
            config.last_evaluated_at = now
            config.save(update_fields=["last_candle_open_time", "last_evaluated_at"])
    return report.as_dict()
