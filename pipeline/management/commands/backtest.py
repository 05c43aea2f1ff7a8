"""`manage.py backtest --strategy S --symbol X --timeframe T --from D --to D [--params JSON] [--json]`.

Replays stored closed candles through the live strategy, indicator and outcome code
(pipeline.backtest) and prints the trades, win rate, average R, profit factor and
maximum drawdown in R. Writes nothing: no signal, no config.
"""
from __future__ import annotations

import datetime as dt
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.aggregation import TIMEFRAMES, TIMEFRAME_MS, dt_to_ms, ms_to_dt
from pipeline.backtest import CandleRow, backtest_run
from pipeline.management.commands.backfill import DATE_HELP
from pipeline.management.commands.backfill import _parse_when as _when  # one date rule for both commands
from pipeline.selectors import UnknownSymbolError, instrument_get
from pipeline.strategies import STRATEGIES, UnknownStrategyError, params_clean, strategy_get
from pipeline.strategies.replay import window_size
from pipeline.strategy_selectors import closed_candle_rows
from pipeline.strategy_services import MAX_COOLDOWN_MINUTES

def _table(trades: list[dict]) -> str:
    header = ("#", "candle", "dir", "entry", "stop", "take-profit", "status", "closed at", "exit", "R")
    rows = [(str(i), t["candle_open_time"], t["direction"], t["entry"], t["stop_loss"], t["take_profit"],
             t["status"], t["closed_at"] or "-", t["exit_price"] or "-", t["r"] or "-")
            for i, t in enumerate(trades, start=1)]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows])


class Command(BaseCommand):
    help = ("Backtest a strategy on stored candles with the live decision and outcome code; "
            "prints trades, win rate, average R, profit factor and max drawdown in R. Writes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--strategy", required=True, help=f"one of {', '.join(STRATEGIES)}")
        parser.add_argument("--symbol", required=True, help="e.g. BTCUSDT")
        parser.add_argument("--timeframe", required=True, help=f"one of {', '.join(TIMEFRAMES)}")
        parser.add_argument("--from", dest="start", required=True, help=f"first candle decided, {DATE_HELP}")
        parser.add_argument("--to", dest="end", required=True, help=f"end (exclusive), {DATE_HELP}")
        parser.add_argument("--params", default="{}", help='strategy params as JSON, e.g. \'{"fast": 5}\'')
        parser.add_argument("--cooldown", type=int, default=0, help="minutes between two signals (default 0)")
        parser.add_argument("--json", action="store_true", help="machine-readable output (trades and summary)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        try:
            strategy = strategy_get(opts["strategy"])
        except UnknownStrategyError as exc:
            raise CommandError(f"--strategy: {exc}") from None
        try:
            raw_params = json.loads(opts["params"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params: not valid JSON ({exc.msg}); e.g. '{{\"fast\": 5}}'.") from None
        params, errors = params_clean(strategy, raw_params)
        if errors:
            detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())
            raise CommandError(f"--params: {detail} (see GET /api/strategies/catalog/)")
        timeframe = opts["timeframe"]
        if timeframe not in TIMEFRAME_MS:
            raise CommandError(f"--timeframe: '{timeframe}' is not stored; use one of {', '.join(TIMEFRAMES)}.")
        try:
            instrument = instrument_get(symbol=opts["symbol"])
        except UnknownSymbolError as exc:
            raise CommandError(f"--symbol: {exc}") from None
        start, end = _when(opts["start"], "--from"), _when(opts["end"], "--to")
        if start >= end:
            raise CommandError("--from must be before --to.")
        if not 0 <= opts["cooldown"] <= MAX_COOLDOWN_MINUTES:
            raise CommandError(f"--cooldown: use 0 to {MAX_COOLDOWN_MINUTES} minutes.")

        # Candles before --from only warm up the indicators (the live window's length).
        period = dt.timedelta(milliseconds=TIMEFRAME_MS[timeframe])
        warm_from = start - period * window_size(strategy, params)
        candles = [CandleRow(dt_to_ms(t), o, h, lo, c, v) for t, o, h, lo, c, v in closed_candle_rows(
            instrument_id=instrument.pk, timeframe=timeframe, since=warm_from, until=end)]
        if not any(c.open_ms >= dt_to_ms(start) for c in candles):
            raise CommandError(f"No closed {timeframe} candles of {instrument.symbol} between {start.isoformat()} "
                               f"and {end.isoformat()}: backfill them first (manage.py backfill).")
        bar = tqdm(total=len(candles), unit="candle", file=sys.stderr, disable=opts["no_progress"],
                   desc=f"{strategy.name} {instrument.symbol} {timeframe}")
        with bar:
            result = backtest_run(strategy=strategy, params=params, timeframe=timeframe, candles=candles,
                                  start_ms=dt_to_ms(start), tick=instrument.tick_size,
                                  cooldown_minutes=opts["cooldown"], progress=bar.update)
        trades = [t.as_dict() for t in result.trades]
        summary = result.summary()
        header = {"strategy": strategy.name, "symbol": instrument.symbol, "timeframe": timeframe,
                  "from": start.isoformat(), "to": end.isoformat(), "params": params, "cooldown": opts["cooldown"],
                  "candles": sum(1 for c in candles if c.open_ms >= dt_to_ms(start))}
        if opts["json"]:
            self.stdout.write(json.dumps({**header, "summary": summary, "trades": trades}, indent=2))
            return
        self.stdout.write(f"{strategy.name} on {instrument.symbol} {timeframe}, "
                          f"{ms_to_dt(dt_to_ms(start)):%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, "
                          f"{header['candles']} candles, params {json.dumps(params)}")
        self.stdout.write(_table(trades) if trades else "no signals")
        s = summary
        self.stdout.write(
            f"trades {s['trades']} (open {s['open']})  wins {s['wins']}  losses {s['losses']}  "
            f"win rate {s['win_rate'] or '-'}  average R {s['average_r'] or '-'}  total R {s['total_r']}  "
            f"profit factor {s['profit_factor'] or '-'}  max drawdown {s['max_drawdown_r']} R")
