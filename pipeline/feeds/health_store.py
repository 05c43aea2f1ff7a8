"""Stream health shared between processes through Redis.

Why: the feed process knows whether each symbol's stream is alive; the Celery
fallback task, `pipeline_status` and /health run elsewhere. The feed publishes a
snapshot every second into hashes with a short TTL, so a feed process that dies
or hangs simply stops refreshing them and, within seconds, every reader sees
"stream down" instead of a frozen "healthy". Readers also re-judge staleness from
the last-message times with their own clock, for the same reason.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import redis
from django.conf import settings

from pipeline.redis_store import redis_client, redis_key

from .state import symbol_stream_healthy

PUBLISH_TTL_SECONDS = 10


def _redis() -> redis.Redis:
    return redis_client(decode=True)


def _key(name: str) -> str:
    return redis_key(f"feed:{name}")


def feed_health_publish(*, symbols: dict[str, dict[str, Any]], connections: list[dict[str, Any]],
                        process: dict[str, Any], ttl: int = PUBLISH_TTL_SECONDS) -> None:
    """Replace the published snapshot (atomically, so readers never see half of it)."""
    now = time.time()
    pipe = _redis().pipeline(transaction=True)
    for name, rows in (("symbols", {s: json.dumps(v) for s, v in symbols.items()}),
                       ("connections", {c["name"]: json.dumps(c) for c in connections})):
        pipe.delete(_key(name))
        if rows:
            pipe.hset(_key(name), mapping=rows)
            pipe.expire(_key(name), ttl)
    pipe.set(_key("process"), json.dumps({**process, "pid": os.getpid(), "published_at": now}), ex=ttl)
    pipe.execute()


def feed_health_clear() -> None:
    """Called on a clean shutdown: the streams are down from now on."""
    _redis().delete(_key("symbols"), _key("connections"), _key("process"))


def feed_symbol_health(*, now: float | None = None, stale_seconds: float | None = None) -> dict[str, dict[str, Any]]:
    """Per symbol as published by the feed, with `healthy` re-judged now.

    A symbol missing here has no stream (feed down or not subscribed).
    """
    now = time.time() if now is None else now
    stale = settings.FEED_STALE_SECONDS if stale_seconds is None else stale_seconds
    out = {}
    for symbol, raw in _redis().hgetall(_key("symbols")).items():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        entry["healthy"] = symbol_stream_healthy(
            state=entry.get("state", ""), symbol_last_message_at=entry.get("last_message_at"),
            now=now, stale_seconds=stale, expected_gap=entry.get("expected_gap_seconds"),
            min_seconds=settings.FEED_STALL_MIN_SECONDS, factor=settings.FEED_STALL_FACTOR)
        out[symbol] = entry
    return out


def feed_connections() -> list[dict[str, Any]]:
    rows = []
    for raw in _redis().hgetall(_key("connections")).values():
        try:
            rows.append(json.loads(raw))
        except ValueError:
            continue
    return sorted(rows, key=lambda r: r.get("name", ""))


def feed_overview() -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(process, connections, fallback state) in one round trip (for /metrics)."""
    pipe = _redis().pipeline(transaction=False)
    pipe.get(_key("process"))
    pipe.hgetall(_key("connections"))
    pipe.hgetall(_key("fallback"))
    process, connections, fallback = pipe.execute()
    return (json.loads(process) if process else None, _json_rows(connections.values()),
            dict(zip(fallback, _json_rows(fallback.values()))))


def _json_rows(raws) -> list[dict[str, Any]]:
    rows = []
    for raw in raws:
        try:
            rows.append(json.loads(raw))
        except ValueError:
            rows.append({})
    return rows


def feed_process() -> dict[str, Any] | None:
    raw = _redis().get(_key("process"))
    return json.loads(raw) if raw else None


# --- commands to the feed (decisions made outside the feed process) -----------------------

COMMAND_TTL_SECONDS = 60


def feed_reconnect_request(*, connection: str = "all", reason: str) -> None:
    """Ask the running feed to reconnect one stream connection (or "all"); it picks
    the request up within a second. Requests older than a minute are dropped."""
    key = _key("commands")
    pipe = _redis().pipeline(transaction=True)
    pipe.rpush(key, json.dumps({"reconnect": connection, "reason": reason, "at": time.time()}))
    pipe.expire(key, COMMAND_TTL_SECONDS)
    pipe.execute()


def feed_commands_take() -> list[dict[str, Any]]:
    """Every pending command, oldest first, removed from the queue (the feed calls this)."""
    pipe = _redis().pipeline(transaction=True)
    pipe.lrange(_key("commands"), 0, -1)
    pipe.delete(_key("commands"))
    raws, _ = pipe.execute()
    now = time.time()
    return [c for c in _json_rows(raws) if c and now - float(c.get("at", 0)) <= COMMAND_TTL_SECONDS]


# --- fallback bookkeeping (written by the Celery task, read by pipeline_status) ---------

def fallback_state_get() -> dict[str, dict[str, Any]]:
    out = {}
    for symbol, raw in _redis().hgetall(_key("fallback")).items():
        try:
            out[symbol] = json.loads(raw)
        except ValueError:
            continue
    return out


def fallback_state_set(*, symbol: str, state: dict[str, Any]) -> None:
    _redis().hset(_key("fallback"), symbol, json.dumps(state))


def fallback_state_clear(*, symbol: str) -> None:
    _redis().hdel(_key("fallback"), symbol)


_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def fallback_lock(*, ttl: float) -> str | None:
    """One poll at a time across workers (beat may fire while a slow poll still runs).

    Returns a token for fallback_unlock, or None when another poll holds the lock.
    The TTL frees the lock if its holder dies.
    """
    token = uuid.uuid4().hex
    return token if _redis().set(_key("fallback:lock"), token, nx=True, px=int(ttl * 1000)) else None


def fallback_unlock(token: str) -> None:
    # Compare-and-delete: never release a lock that expired and was taken by another poll.
    _redis().eval(_UNLOCK, 1, _key("fallback:lock"), token)
