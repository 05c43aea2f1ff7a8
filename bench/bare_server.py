"""Baseline for bench/fanout.py: the least a fan-out server can do.

A bare `websockets` server that checks a token header, subscribes to one Redis
pub/sub channel and relays each message with `websockets.broadcast()` (the frame is
encoded once and written to every connection). No Django, no channel layer, no
replay: the floor our real server is compared against.
"""
from __future__ import annotations

import argparse
import asyncio
import http

import redis.asyncio as aioredis
from websockets.asyncio.server import broadcast, serve

CLIENTS: set = set()


async def _handler(ws) -> None:
    CLIENTS.add(ws)
    try:
        async for _ in ws:  # clients only send pings here; ignore the payloads
            pass
    finally:
        CLIENTS.discard(ws)


def _auth(token: str):
    def process_request(connection, request):
        if request.headers.get("Authorization") != f"Token {token}":
            return connection.respond(http.HTTPStatus.FORBIDDEN, "forbidden\n")
        return None

    return process_request


async def _relay(redis_url: str, channel: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    async for message in pubsub.listen():
        if message["type"] == "message":
            broadcast(CLIENTS, message["data"].decode())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other processes")
    args = parser.parse_args()
    async with serve(_handler, "127.0.0.1", args.port, process_request=_auth(args.token),
                     max_queue=None, ping_interval=20, reuse_port=args.reuse_port or None):
        await _relay(args.redis, args.channel)


if __name__ == "__main__":
    asyncio.run(main())
