"""REST polling fallback: keeps candles moving while a symbol's stream is down.

Runs as a Celery beat task (pipeline.tasks.feed_fallback_poll, every ~10 s). For
each followed instrument whose market session is open, it reads the stream health
the feed process publishes in Redis (pipeline.feeds.health_store). Healthy stream:
nothing to do (and if we were polling it, hand back and say so). Down or stale
stream, or no feed process at all: poll REST klines from where the stream (or the
previous poll) left off and ingest them. Outside its session a market is neither
streamed nor polled. Polling state lives in Redis so every worker continues where
the previous poll stopped and `pipeline_status` can show it.

Known imprecision, by design: polling stores the *forming* minute as the exchange
reports it at poll time. If the stream resumes within the same minute, trades
between that poll and the resume are missing from the candle until the minute's
closed kline arrives on the kline stream, which replaces it (closed klines are final).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from pipeline.aggregation import MINUTE_MS

from . import health_store
from .rest import BinanceRestClient, RateLimited, RestError

logger = logging.getLogger(__name__)

# First poll of an outage with no known last message: how far back to look.
LOOKBACK_MINUTES = 5
# Longest the lock is held if a worker dies mid-poll.
LOCK_SECONDS = 60


def fallback_poll(*, now: dt.datetime | None = None, client: BinanceRestClient | None = None
                  ) -> dict[str, str]:
    """One polling round. Returns {symbol: "stream" | "polling" | "closed" |
    "rate_limited" | "error"}."""
    from pipeline.selectors import feed_instruments
    from pipeline.services import klines_ingest
    from pipeline.sessions import market_is_open

    now = now or timezone.now()
    now_s = now.timestamp()
    now_ms = int(now_s * 1000)
    # Stream health is judged on this machine's clock (it compares receive times);
    # `now` is market time (sessions, kline ranges).
    health = health_store.feed_symbol_health()
    polling = health_store.fallback_state_get()
    result: dict[str, str] = {}
    for instrument in feed_instruments():
        symbol = instrument.symbol
        state = polling.get(symbol)
        if not market_is_open(instrument.market, now):
            if state is not None:
                health_store.fallback_state_clear(symbol=symbol)
                logger.info("fallback %s: session closed, polling stops", symbol)
            result[symbol] = "closed"
            continue
        stream = health.get(symbol)
        if stream is not None and stream["healthy"]:
            if state is not None:
                health_store.fallback_state_clear(symbol=symbol)
                logger.info("fallback %s: stream healthy again after %d polls; handing back to the stream",
                            symbol, state.get("polls", 0))
            result[symbol] = "stream"
            continue
        if state is None:
            # Start at the minute of the last trade the stream delivered (exchange time).
            last_ms = stream.get("last_market_ms") if stream else None
            start_ms = last_ms if last_ms else now_ms - LOOKBACK_MINUTES * MINUTE_MS
            state = {"since_ms": now_ms, "cursor_ms": start_ms - start_ms % MINUTE_MS, "polls": 0,
                     "klines": 0, "reason": _why(stream)}
            logger.warning("fallback %s: stream %s; REST polling takes over", symbol, state["reason"])
        if client is None:
            client = BinanceRestClient.from_settings(max_wait=2.0)
        try:
            klines = client.klines(symbol, "1m", state["cursor_ms"], now_ms)
        except RateLimited as exc:
            logger.warning("fallback %s: rate limited (retry in %.1fs)", symbol, exc.retry_after)
            result[symbol] = "rate_limited"
            health_store.fallback_state_set(symbol=symbol, state={**state, "last_error": str(exc)})
            continue
        except RestError as exc:
            logger.warning("fallback %s: %s", symbol, exc)
            result[symbol] = "error"
            health_store.fallback_state_set(symbol=symbol, state={**state, "last_error": str(exc)})
            continue
        if klines:
            klines_ingest(klines=klines)
            # Next poll starts at the newest kline still forming (or the one after the
            # last closed one), so it is refreshed until it closes.
            open_klines = [k.open_ms for k in klines if not k.closed]
            state["cursor_ms"] = min(open_klines) if open_klines else klines[-1].open_ms + MINUTE_MS
        state.update(polls=state["polls"] + 1, klines=state["klines"] + len(klines),
                     last_poll_at=now_s, last_error="")
        health_store.fallback_state_set(symbol=symbol, state=state)
        result[symbol] = "polling"
    # Symbols no longer followed must not stay "polling" forever.
    for symbol in set(polling) - set(result):
        health_store.fallback_state_clear(symbol=symbol)
    return result


def _why(stream: dict[str, Any] | None) -> str:
    if stream is None:
        return "down (no feed process is streaming it)"
    if stream.get("state") != "connected":
        return f"down (connection {stream.get('state')})"
    last = stream.get("last_message_at")
    if last is None:
        return "stale (no message yet)"
    return f"stale (no message for {time.time() - last:.0f}s, limit {settings.FEED_STALE_SECONDS:g}s)"


def fallback_poll_locked() -> dict[str, Any]:
    """fallback_poll under a Redis lock, so overlapping beats never poll twice."""
    token = health_store.fallback_lock(ttl=LOCK_SECONDS)
    if token is None:
        return {"skipped": "another fallback poll is running"}
    try:
        return fallback_poll()
    finally:
        health_store.fallback_unlock(token)
