"""`manage.py run_feed`: the long-lived market-data feed process (pipeline.feeds.runner)."""
from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pipeline.feeds.keypool import ApiKeyPool
from pipeline.feeds.rest import BinanceRestClient
from pipeline.feeds.runner import FeedRunner
from pipeline.feeds.standby import FeedLeaseKeeper

logger = logging.getLogger("pipeline.feeds.runner")


class Command(BaseCommand):
    help = ("Stream trades and klines from BINANCE_WS_URL into candles, following market sessions and "
            "readiness; publishes stream health to Redis. One feed is active per database: a second one "
            "waits as a standby (logging which feed is active) and takes over within FEED_LEASE_SECONDS "
            "(+ a third) when the active one dies. Stops cleanly on SIGTERM / Ctrl-C.")

    def add_arguments(self, parser):
        parser.add_argument("--ws-url", default=None, help="default: BINANCE_WS_URL")
        parser.add_argument("--rest-url", default=None, help="default: BINANCE_REST_URL")
        parser.add_argument("--stale-seconds", type=float, default=None, help="default: FEED_STALE_SECONDS")
        parser.add_argument("--supervise-interval", type=float, default=5.0,
                            help="seconds between session/readiness checks (default 5)")
        parser.add_argument("--run-seconds", type=float, default=None,
                            help="stop by itself after this many seconds (demos, smoke tests)")

    def handle(self, *args, **opts):
        ws_url = opts["ws_url"] or settings.BINANCE_WS_URL
        rest_url = opts["rest_url"] or settings.BINANCE_REST_URL
        if not ws_url.startswith(("ws://", "wss://")):
            raise CommandError(f"the stream URL must start with ws:// or wss:// (BINANCE_WS_URL={ws_url!r})")
        if not rest_url.startswith(("http://", "https://")):
            raise CommandError(f"the REST URL must start with http:// or https:// (BINANCE_REST_URL={rest_url!r})")
        stale = opts["stale_seconds"]
        if stale is not None and stale <= 0:
            raise CommandError("--stale-seconds must be positive")
        if opts["supervise_interval"] <= 0:
            raise CommandError("--supervise-interval must be positive")
        from pipeline.selectors import feed_instruments

        if not feed_instruments():
            self.stderr.write(self.style.WARNING(
                "No active instruments to follow (FEED_SYMBOLS=%s). Add instruments in the admin; "
                "the feed picks them up without a restart." % (",".join(settings.FEED_SYMBOLS) or "<all>")))
        rest = BinanceRestClient(rest_url, ApiKeyPool.from_settings(), max_wait=5.0)

        def make_runner() -> FeedRunner:
            return FeedRunner(ws_url=ws_url, rest=rest, stale_seconds=stale,
                              supervise_interval=opts["supervise_interval"])

        keeper = FeedLeaseKeeper(make_runner=make_runner, lease_seconds=settings.FEED_LEASE_SECONDS)
        self.stdout.write(f"Feed {keeper.holder}: streams {ws_url}, REST {rest_url}, "
                          f"{len(rest.key_pool)} API key slot(s)")
        asyncio.run(self._run(keeper, opts["run_seconds"]))
        self.stdout.write("Feed stopped")

    async def _run(self, keeper: FeedLeaseKeeper, run_seconds: float | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if run_seconds is not None:
            loop.call_later(run_seconds, stop.set)
        await keeper.run(stop)
