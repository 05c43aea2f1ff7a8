"""`manage.py run_exchange_simulator`: a loopback exchange speaking Binance's protocol.

The demo and the launcher point BINANCE_WS_URL / BINANCE_REST_URL at it; fault
knobs are POST endpoints under /_control/ (see pipeline.feeds.simulator.server).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import time

from django.core.management.base import BaseCommand, CommandError

from pipeline.feeds.simulator import CsvReplay, ExchangeSimulator, RandomWalk
from pipeline.feeds.simulator.market import MAX_TRADES_PER_SECOND, CsvError

DEFAULT_SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT,USDCOP"
FAULTS = ("drop_all", "stall?seconds=", "refuse_handshakes?count=", "malformed?count=",
          "duplicates?count=", "out_of_order?count=", "rate_limit?count=&retry_after=", "reset")


class Command(BaseCommand):
    help = ("Serve a simulated exchange (Binance WebSocket streams + REST klines) on one loopback "
            "port, from a seeded random walk or a CSV replay. Runs until Ctrl-C / SIGTERM.")

    # A standalone server: it touches no model or URL, so it must start even while
    # the rest of the project fails its checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9443)
        parser.add_argument("--symbols", default=DEFAULT_SYMBOLS,
                            help=f"comma-separated symbols for the random walk (default {DEFAULT_SYMBOLS})")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--csv", dest="csv_path", help="replay trades from this CSV (symbol,price,qty[,time])")
        parser.add_argument("--trades-per-second", type=float, default=2.0,
                            help="mean trades per second per symbol (default 2)")
        parser.add_argument("--ping-interval", type=float, default=20.0,
                            help="seconds between server pings (default 20)")
        parser.add_argument("--kline-push-interval", type=float, default=1.0,
                            help="seconds between kline updates per stream (default 1)")

    def handle(self, *args, **opts):
        tps = opts["trades_per_second"]
        if not 0 < tps <= MAX_TRADES_PER_SECOND:
            raise CommandError(f"--trades-per-second must be between 0 and {MAX_TRADES_PER_SECOND}, got {tps:g}")
        if not 0 <= opts["port"] <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, got {opts['port']}")
        if opts["ping_interval"] <= 0 or opts["kline_push_interval"] <= 0:
            raise CommandError("--ping-interval and --kline-push-interval must be positive")
        if opts["csv_path"]:
            try:
                source = CsvReplay(opts["csv_path"], origin_ms=int(time.time() * 1000), trades_per_second=tps)
            except CsvError as exc:
                raise CommandError(f"cannot replay CSV: {exc}") from None
        else:
            symbols = [s.strip().upper() for s in opts["symbols"].split(",") if s.strip()]
            bad = [s for s in symbols if not s.isalnum()]
            if not symbols or bad:
                raise CommandError(f"--symbols must be a comma-separated list like {DEFAULT_SYMBOLS}"
                                   + (f" (bad: {', '.join(bad)})" if bad else ""))
            source = RandomWalk(symbols, seed=opts["seed"], trades_per_second=tps)
        try:
            asyncio.run(self._serve(source, opts))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(f"port {opts['port']} on {opts['host']} is already in use: "
                                   "stop the other process or pick another --port") from None
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from None

    async def _serve(self, source, opts) -> None:
        if opts["verbosity"] < 2:
            # websockets logs every REST response and socket close at INFO; the
            # simulator's own log already says who connected and what faults fired.
            logging.getLogger("pipeline.feeds.simulator.ws").setLevel(logging.WARNING)
        sim = ExchangeSimulator(source, host=opts["host"], port=opts["port"],
                                ping_interval=opts["ping_interval"],
                                kline_push_interval=opts["kline_push_interval"])
        await sim.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write(self.style.SUCCESS(
            f"Exchange simulator: {sim.ws_url}/stream?streams=btcusdt@trade/btcusdt@kline_1m  "
            f"REST {sim.rest_url}/api/v3/klines"))
        self.stdout.write(f"Symbols: {', '.join(sorted(source.symbols))}  "
                          f"({'CSV replay' if opts['csv_path'] else 'random walk, seed %d' % opts['seed']}, "
                          f"{opts['trades_per_second']:g} trades/s per symbol)")
        self.stdout.write(f"Faults: POST {sim.rest_url}/_control/<{'|'.join(FAULTS)}>; "
                          f"GET {sim.rest_url}/_control/state")
        try:
            await stop.wait()
        finally:
            self.stdout.write("Stopping exchange simulator")
            await sim.stop()
