"""`manage.py backfill SYMBOL --since DATE [--until DATE] [--timeframe 1m]`.

Pages REST klines from BINANCE_REST_URL into candles (the same upsert as the live
feed, so running it twice or over live data is harmless) with a progress bar, then
reports any gap the exchange could not fill.
"""
from __future__ import annotations

import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.aggregation import TIMEFRAMES, dt_to_ms, ms_to_dt
from pipeline.selectors import UnknownSymbolError, candle_gaps, instrument_get
from signals.selectors import iso_utc

DATE_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC unless an offset is given)"


def _parse_when(value: str, option: str) -> dt.datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        if len(text) == 10:
            parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
        else:
            parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: '{value}' is not a valid date; use {DATE_HELP}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _iso(ms: int) -> str:
    return iso_utc(ms_to_dt(ms))


class Command(BaseCommand):
    help = "Backfill candles of one symbol from the exchange's REST klines, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("symbol", help="e.g. BTCUSDT")
        parser.add_argument("--since", required=True, help=f"start, {DATE_HELP}")
        parser.add_argument("--until", help=f"end (exclusive, default now), {DATE_HELP}")
        parser.add_argument("--timeframe", default="1m", choices=TIMEFRAMES,
                            help="kline interval to fetch (default 1m; 5m/15m/1h are rolled up from 1m anyway)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, cron)")

    def handle(self, *args, **opts):
        from pipeline.feeds.rest import BinanceRestClient, RestError
        from pipeline.services import candles_backfill

        try:
            instrument = instrument_get(symbol=opts["symbol"])
        except UnknownSymbolError as exc:
            from signals.models import Instrument

            known = ", ".join(Instrument.objects.values_list("symbol", flat=True)) or "none yet"
            raise CommandError(f"{exc} Known symbols: {known}.") from None
        now_ms = int(time.time() * 1000)
        since_ms = dt_to_ms(_parse_when(opts["since"], "--since"))
        until_ms = dt_to_ms(_parse_when(opts["until"], "--until")) if opts["until"] else now_ms
        if since_ms >= now_ms:
            raise CommandError(f"--since {opts['since']} is in the future: nothing to backfill.")
        until_ms = min(until_ms, now_ms)
        if since_ms >= until_ms:
            raise CommandError(f"--since ({_iso(since_ms)}) must be before --until ({_iso(until_ms)}).")

        timeframe = opts["timeframe"]
        client = BinanceRestClient.from_settings()
        bar = tqdm(total=0, unit=" candles", desc=f"{instrument.symbol} {timeframe}",
                   disable=opts["no_progress"], file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            stored = candles_backfill(symbol=instrument.symbol, since_ms=since_ms, until_ms=until_ms,
                                      fetch=client.klines, progress=progress, timeframe=timeframe)
        except RestError as exc:
            raise CommandError(f"The exchange REST API failed ({client.base_url}): {exc}") from None
        finally:
            bar.close()
        gaps = candle_gaps(symbol=instrument.symbol, timeframe=timeframe, since_ms=since_ms, until_ms=until_ms)
        self.stdout.write(
            f"Stored {stored} {timeframe} candles of {instrument.symbol} from {_iso(since_ms)} to {_iso(until_ms)}."
        )
        if gaps:
            missing = sum(end - start for start, end in gaps) // 60_000
            first = ", ".join(f"{_iso(s)}..{_iso(e)}" for s, e in gaps[:3])
            self.stdout.write(self.style.WARNING(
                f"{len(gaps)} gap(s) the exchange did not fill ({missing} minutes), first: {first}"))
        else:
            self.stdout.write(self.style.SUCCESS("No gaps inside the market's sessions."))
