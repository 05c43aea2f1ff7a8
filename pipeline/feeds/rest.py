"""REST client for the exchange's kline endpoint (backfill and fallback polling).

stdlib `urllib` on purpose: a handful of GETs per minute do not justify another
HTTP dependency, and the calls run in Celery workers or a worker thread of the
feed, where blocking I/O is fine. Every request goes through the API key pool,
and a 429/418 benches the key for the Retry-After the exchange sent before the
request is retried (on another key if one is free).
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

from pipeline.market_data import Kline

from .connection import url_is_loopback
from .keypool import ApiKeyPool, KeysExhausted, key_label
from .protocol import INTERVAL_MS, MalformedMessage, kline_from_rest_row

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000


class RestError(RuntimeError):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class RateLimited(RestError):
    """Still rate limited after the allowed retries/wait."""

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message, status=429)
        self.retry_after = retry_after


def _retry_after(headers: Any, default: float) -> float:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else default
    except ValueError:
        return default


class BinanceRestClient:
    def __init__(
        self,
        base_url: str,
        key_pool: ApiKeyPool | None = None,
        *,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.base_url = base_url.rstrip("/")
        self.key_pool = key_pool or ApiKeyPool()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        handlers = [urllib.request.ProxyHandler({})] if url_is_loopback(self.base_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_settings(cls, **kwargs: Any) -> "BinanceRestClient":
        from django.conf import settings

        return cls(settings.BINANCE_REST_URL, ApiKeyPool.from_settings(), **kwargs)

    # --- endpoints ------------------------------------------------------------------

    def klines(self, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None,
               limit: int = MAX_LIMIT) -> list[Kline]:
        """GET /api/v3/klines: klines opening in [start_ms, end_ms], oldest first."""
        if interval not in INTERVAL_MS:
            raise ValueError(f"unsupported interval {interval!r}")
        params: dict[str, Any] = {"symbol": symbol.upper(), "interval": interval,
                                  "limit": max(1, min(int(limit), MAX_LIMIT))}
        if start_ms is not None:
            params["startTime"] = int(start_ms)
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        rows = self._get("/api/v3/klines", params)
        if not isinstance(rows, list):
            raise RestError("klines: expected a JSON array")
        now_ms = int(self._clock() * 1000)
        out = []
        for row in rows:
            try:
                out.append(kline_from_rest_row(symbol, interval, row, now_ms=now_ms))
            except MalformedMessage as exc:
                logger.warning("klines %s: skipped malformed row: %s", symbol, exc)
        return out

    def klines_range(self, symbol: str, interval: str, start_ms: int, end_ms: int,
                     progress: Callable[[int], None] | None = None) -> list[Kline]:
        """All klines opening in [start_ms, end_ms], paging 1,000 at a time (kline_pages)."""
        out: list[Kline] = []
        for page in kline_pages(self.klines, symbol=symbol, interval=interval, since_ms=start_ms,
                                until_ms=end_ms + 1):
            out.extend(page)
            if progress:
                progress(len(page))
        return out

    # --- transport ----------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}?{urlencode(params)}"
        last_error: Exception | None = None
        retry_after = 0.0
        for attempt in range(self.max_attempts):
            try:
                key = self.key_pool.acquire(max_wait=self.max_wait, sleep=self._sleep)
            except KeysExhausted as exc:
                raise RateLimited(str(exc), retry_after=exc.retry_in) from None
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            if key is not None:
                request.add_header("X-MBX-APIKEY", key)
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code in (429, 418):
                    # 418 means "banned for ignoring 429s": honour its Retry-After too.
                    retry_after = _retry_after(exc.headers, 1.0 if exc.code == 429 else 60.0)
                    self.key_pool.penalize(key, retry_after)
                    logger.warning("REST %s: %s for key %s, retry after %.1fs", path, exc.code,
                                   key_label(key), retry_after)
                    last_error = exc
                    continue
                if exc.code >= 500:
                    last_error = exc
                    self._sleep(min(2.0, 0.2 * 2 ** attempt))
                    continue
                raise RestError(_error_message(path, exc.code, body), status=exc.code,
                                code=_error_code(body)) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
                last_error = exc
                self._sleep(min(2.0, 0.2 * 2 ** attempt))
        if isinstance(last_error, urllib.error.HTTPError) and last_error.code in (429, 418):
            raise RateLimited(f"GET {path}: still rate limited after {self.max_attempts} attempts",
                              retry_after=retry_after)
        raise RestError(f"GET {path} failed after {self.max_attempts} attempts: {last_error}")

    def usage(self) -> list[dict[str, Any]]:
        return self.key_pool.usage()


KlineFetch = Callable[[str, str, int, int, int], list[Kline]]


def kline_pages(fetch: KlineFetch, *, symbol: str, interval: str, since_ms: int, until_ms: int,
                limit: int = MAX_LIMIT) -> Iterator[list[Kline]]:
    """The one paging rule for exchange klines: pages of the klines of `symbol`
    opening in [since_ms, until_ms), oldest first, through `fetch(symbol, interval,
    start_ms, end_ms, limit)`. Each next page starts after the newest kline of the
    last one; the first empty page ends it (rows outside the range are ignored)."""
    symbol, step, cursor = symbol.upper(), INTERVAL_MS[interval], since_ms
    while cursor < until_ms:
        page = [k for k in fetch(symbol, interval, cursor, until_ms - 1, limit)
                if cursor <= k.open_ms < until_ms and k.symbol.upper() == symbol]
        if not page:
            return
        yield page
        cursor = max(k.open_ms for k in page) + step


def _error_code(body: bytes) -> int | None:
    try:
        return int(json.loads(body).get("code"))
    except (ValueError, TypeError, AttributeError):
        return None


def _error_message(path: str, status: int, body: bytes) -> str:
    try:
        detail = json.loads(body).get("msg", "")
    except (ValueError, AttributeError):
        detail = body[:200].decode("utf-8", "replace")
    return f"GET {path}: HTTP {status}: {detail}"
