"""Client swarm process for bench/fanout_e2e.py: N WebSocket clients that record the
wall-clock time each signal id arrives. Commands on stdin, one JSON line out each:
  count                          {"open": n}
  latencies {"<id>": t0, ...}    {"ms": [...], "delivered": k}  (ms = arrival - t0)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time


def _signal_id(frame: str) -> int | None:
    if not frame.startswith('{"type":"new_signal"'):
        return None
    at = frame.find('"id":')
    return int(frame[at + 5:frame.find(",", at)])


async def main() -> None:
    import websockets

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="new clients per second")
    args = parser.parse_args()
    received: list[dict[int, float]] = []
    sockets = []

    async def _client(index: int) -> None:
        # Ready once a ping is answered (the server's admission control may instead
        # close a new connection with 4503 retry_after=<s>: then come back later).
        while True:
            try:
                ws = await websockets.connect(args.url, additional_headers={"Authorization": f"Token {args.token}"},
                                              open_timeout=120, max_queue=None, ping_interval=None, compression=None)
            except (OSError, websockets.InvalidMessage, asyncio.TimeoutError):
                await asyncio.sleep(random.uniform(0.5, 2))  # listen backlog full: try again
                continue
            except websockets.InvalidStatus:
                # daphne answers 403 when the application has not accepted within its
                # websocket_connect_timeout (a saturated machine in a 20,000-client
                # storm): a client tries again later, as the dashboard does.
                await asyncio.sleep(random.uniform(1, 4))
                continue
            if args.bare:  # the bare server has no admission control and ignores pings
                break
            try:
                await ws.send('{"type":"ping"}')
                await asyncio.wait_for(ws.recv(), 60)
                break
            except websockets.ConnectionClosed as exc:
                hint = exc.rcvd.reason if exc.rcvd else ""
                wait = float(hint.split("=", 1)[1]) if hint.startswith("retry_after=") else 1.0
                await asyncio.sleep(wait + random.uniform(0, wait))
            except asyncio.TimeoutError:
                # No pong within a minute: count it as a failed attempt, not a dead client.
                print(f"no pong within 60 s (client {index}); reconnecting", file=sys.stderr, flush=True)
                await ws.close()
                await asyncio.sleep(random.uniform(0.5, 2))
        sockets.append(ws)
        seen = received[index]
        async for frame in ws:
            signal_id = _signal_id(frame)
            if signal_id is not None:
                seen.setdefault(signal_id, time.time())

    for index in range(args.clients):
        received.append({})
        asyncio.get_running_loop().create_task(_client(index))
        if index % 50 == 49:
            await asyncio.sleep(50 / args.connect_rate)  # a steady handshake rate, not a storm
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(target=lambda: [loop.call_soon_threadsafe(lines.put_nowait, line) for line in sys.stdin],
                     daemon=True).start()
    while True:
        command, _, arg = (await lines.get()).strip().partition(" ")
        if command == "count":
            print(json.dumps({"open": len(sockets)}), flush=True)
        elif command == "latencies":
            starts = {int(k): v for k, v in json.loads(arg).items()}
            ms = [round((seen[i] - t0) * 1000, 2) for seen in received for i, t0 in starts.items() if i in seen]
            print(json.dumps({"ms": ms, "delivered": len(ms)}), flush=True)
        elif command == "quit":
            return


if __name__ == "__main__":
    asyncio.run(main())
