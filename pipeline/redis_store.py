"""The pipeline's Redis client and key names, in one place.

Why one factory: the latest-price cache, the feed's health snapshot, the fallback
state and the health history all talk to the same Redis; one client per (URL,
decoding) per process reuses its connection pool, and a test or an operator that
points REDIS_URL elsewhere gets a client for the new URL rather than a stale one.
Keys share the cache's prefix (CACHE_KEY_PREFIX, read through settings.CACHES), so
two deployments or test runs on one Redis never read each other's keys.
"""
from __future__ import annotations

import threading

import redis
from django.conf import settings

# Every call either answers or fails within this many seconds: a hung Redis must
# never hold the feed, a health check or a request.
REDIS_TIMEOUT_SECONDS = 2.0

_lock = threading.Lock()
_clients: dict[tuple[str, bool], redis.Redis] = {}


def redis_client(*, decode: bool = False) -> redis.Redis:
    """The process's client for settings.REDIS_URL (`decode`: str instead of bytes)."""
    key = (settings.REDIS_URL, decode)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS, decode_responses=decode)
        return client


def redis_key(name: str) -> str:
    """`name` under this deployment's key prefix."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or ""
    return f"{prefix}:{name}" if prefix else name
