"""Backtests: stored candles through the live decision and outcome code, no writes.

Each candle is decided exactly as the live runner decides it (pipeline.strategies
`window_decide` over the same fixed window, the same tick rounding and cooldown),
and each proposal is scored by the outcome engine's candle rule
(pipeline.outcomes.engine: the candle's open as a first trade, then the stop
before the targets, exits at the level) on the following candles of the same
timeframe, from the moment the live signal would have been created (the candle's
close). Pure: candles in, trades and figures out; `manage.py backtest` is the door.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Sequence

from signals.times import iso_utc

from .aggregation import TIMEFRAME_MS, ms_to_dt
from .outcomes.engine import OPEN, EngineInputError, Levels, OutcomeState, apply_candle, levels_build, state_new
from .outcomes.records import r_multiple
from .strategies import Bar, Strategy
from .strategies.replay import window_decide, window_size
from .strategy_services import proposal_fields


@dataclass(frozen=True, slots=True)
class CandleRow:
    """A stored closed candle with its exact prices (the outcome engine uses Decimals)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)

    def bar(self) -> Bar:
        return Bar(self.open_ms, float(self.open), float(self.high), float(self.low), float(self.close),
                   float(self.volume))


@dataclass
class BacktestTrade:
    candle_open_ms: int
    direction: str
    entry: Decimal
    stop: Decimal
    take_profit: Decimal
    confidence: int
    note: str
    levels: Levels
    state: OutcomeState

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def r(self) -> Decimal | None:
        return r_multiple(self.levels, self.state) if self.state.status != OPEN else None

    def as_dict(self) -> dict[str, Any]:
        closed_at = self.state.closed_at
        return {
            "candle_open_time": iso_utc(ms_to_dt(self.candle_open_ms)),
            "direction": self.direction, "entry": str(self.entry), "stop_loss": str(self.stop),
            "take_profit": str(self.take_profit), "confidence": self.confidence, "status": self.status,
            "closed_at": iso_utc(closed_at) if closed_at else None,
            "exit_price": None if self.state.exit_price is None else str(self.state.exit_price),
            "r": None if self.r is None else str(self.r), "note": self.note,
        }


@dataclass
class BacktestResult:
    trades: list[BacktestTrade]

    def summary(self) -> dict[str, Any]:
        """Closed trades only: count, wins (R > 0), losses (R < 0), win rate, average R,
        profit factor (gross winning R / gross losing R; None without losses) and the
        maximum drawdown of cumulative R in close order."""
        closed = sorted((t for t in self.trades if t.r is not None), key=lambda t: (t.state.closed_at, t.candle_open_ms))
        rs = [t.r for t in closed]
        wins = [r for r in rs if r > 0]
        losses = [r for r in rs if r < 0]
        gross_loss = -sum(losses, Decimal(0))
        peak = total = drawdown = Decimal(0)
        for r in rs:
            total += r
            peak = max(peak, total)
            drawdown = max(drawdown, peak - total)
        return {
            "signals": len(self.trades),
            "trades": len(closed),
            "open": len(self.trades) - len(closed),
            "wins": len(wins),
            "losses": len(losses),
            "win_rate": _ratio(Decimal(len(wins)), Decimal(len(closed))),
            "average_r": _ratio(sum(rs, Decimal(0)), Decimal(len(closed))),
            "total_r": str(sum(rs, Decimal(0))),
            "profit_factor": _ratio(sum(wins, Decimal(0)), gross_loss),
            "max_drawdown_r": str(drawdown),
        }


def _ratio(a: Decimal, b: Decimal) -> str | None:
    return None if not b else str((a / b).quantize(Decimal("0.0001")))


def backtest_run(*, strategy: Strategy, params: dict[str, Any], timeframe: str, candles: Sequence[CandleRow],
                 start_ms: int, tick: Decimal, cooldown_minutes: int = 0,
                 progress: Callable[[int], None] | None = None) -> BacktestResult:
    """Decide every candle opening at or after `start_ms` (earlier candles only warm
    up the indicators) and score each proposal on the candles after it."""
    period_ms = TIMEFRAME_MS[timeframe]
    size = window_size(strategy, params)
    bars = [c.bar() for c in candles]
    open_trades: list[BacktestTrade] = []
    trades: list[BacktestTrade] = []
    last_trigger: int | None = None
    for i, candle in enumerate(candles):
        for trade in open_trades:
            apply_candle(trade.levels, trade.state, open_time=ms_to_dt(candle.open_ms), open=candle.open,
                         high=candle.high, low=candle.low, close=candle.close,
                         end=ms_to_dt(candle.open_ms + period_ms))
        open_trades = [t for t in open_trades if t.state.status == OPEN]
        if progress is not None:
            progress(1)
        if candle.open_ms < start_ms or i + 1 < size:
            continue
        proposal = window_decide(strategy, params, bars[max(0, i + 1 - size):i + 1])
        if proposal is None:
            continue
        if last_trigger is not None and candle.open_ms - last_trigger < cooldown_minutes * 60_000:
            continue
        fields = proposal_fields(proposal, tick)
        try:
            levels = levels_build(direction=fields["direction"], entry=fields["entry_price"],
                                  stop=fields["stop_loss"], take_profit=fields["take_profit"],
                                  targets=fields.get("targets"),
                                  created_at=ms_to_dt(candle.open_ms + period_ms))
        except EngineInputError:
            continue  # live, signal_create would refuse it the same way (levels collapsed by rounding)
        trade = BacktestTrade(candle.open_ms, fields["direction"], fields["entry_price"], fields["stop_loss"],
                              fields["take_profit"], fields["confidence"], fields["note"], levels, state_new(levels))
        trades.append(trade)
        open_trades.append(trade)
        last_trigger = candle.open_ms
    return BacktestResult(trades)
