"""A swarm of resuming WebSocket clients, split over child processes, for fault tests.

Each client behaves like a real one: it connects with `after_id=<last id it holds>`,
records every `new_signal` id, and on any close reconnects after a delay:
  backoff  like the dashboard: full jitter from 0.5 s doubling to 8 s, and a 4503
           close's `retry_after=<s>` hint honoured (plus jitter);
  eager    like many bots: retries every 0.2-0.5 s and ignores hints.
A test drives the swarm from its own process (`Swarm`); a child runs
`python -m faults.swarm ...` and answers commands on stdin with one JSON line:
  status            {"open", "started", "accepted", "closes": {code: n}, "resyncs"}
  expect FILE       per-client comparison with the id list in FILE (JSON)
  quit
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _signal_id(frame: str) -> int | None:
    # '{"type":"new_signal","signal":{"id":123,...': no full parse per frame, so the
    # harness is not the bottleneck with thousands of clients.
    if not frame.startswith('{"type":"new_signal"'):
        return None
    at = frame.find('"id":')
    return int(frame[at + 5:frame.find(",", at)])


class _Client:
    __slots__ = ("ids", "duplicates", "disorder")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.duplicates = 0
        self.disorder = 0


class _SwarmProcess:
    def __init__(self, args) -> None:
        self.args = args
        self.clients = [_Client() for _ in range(args.clients)]
        self.open = 0
        self.started = 0
        self.accepted = 0
        self.closes: Counter[str] = Counter()
        self.resyncs = 0

    def _delay(self, attempt: int, code: int | None, reason: str) -> float:
        if self.args.mode == "eager":
            return random.uniform(0.2, 0.5)
        if code == 4503 and reason.startswith("retry_after="):
            hint = float(reason.split("=", 1)[1])
            return hint + random.uniform(0, hint)
        return random.uniform(0, min(8.0, 0.5 * 2 ** attempt))

    async def _run_client(self, client: _Client) -> None:
        import websockets

        attempt = 0
        headers = {"Authorization": f"Token {self.args.token}"}
        while True:
            after = client.ids[-1] if client.ids else self.args.after_id
            code, reason = None, ""
            self.started += 1
            try:
                async with websockets.connect(f"{self.args.url}?after_id={after}", additional_headers=headers,
                                              open_timeout=self.args.open_timeout, ping_interval=None,
                                              max_queue=None, compression=None) as ws:
                    self.accepted += 1
                    self.open += 1
                    opened = time.monotonic()
                    try:
                        async for frame in ws:
                            signal_id = _signal_id(frame)
                            if signal_id is None:
                                if frame.startswith('{"type":"resync"'):
                                    self.resyncs += 1
                                continue
                            if client.ids and signal_id <= client.ids[-1]:
                                if signal_id in client.ids:
                                    client.duplicates += 1
                                else:
                                    client.disorder += 1
                                continue
                            client.ids.append(signal_id)
                    finally:
                        self.open -= 1
                        if time.monotonic() - opened > 1:
                            attempt = 0
                    code, reason = ws.close_code, ws.close_reason or ""
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                reason = exc.rcvd.reason if exc.rcvd else ""
            except Exception:  # noqa: BLE001 - refused, reset, timed out: retry like a real client
                pass
            self.closes[str(code)] += 1
            await asyncio.sleep(self._delay(attempt, code, reason))
            attempt += 1

    def _answer(self, line: str) -> dict:
        command, _, arg = line.strip().partition(" ")
        if command == "status":
            return {"open": self.open, "started": self.started, "accepted": self.accepted,
                    "closes": dict(self.closes), "resyncs": self.resyncs}
        if command == "expect":
            expected = json.loads(Path(arg).read_text())
            exact = sum(1 for c in self.clients if c.ids == expected)
            return {"clients": len(self.clients), "exact": exact,
                    "missing": sum(len(set(expected) - set(c.ids)) for c in self.clients),
                    "extra": sum(len(set(c.ids) - set(expected)) for c in self.clients),
                    "duplicates": sum(c.duplicates for c in self.clients),
                    "disorder": sum(c.disorder for c in self.clients)}
        return {"error": f"unknown command {command!r}"}

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def _read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "quit")

        threading.Thread(target=_read_stdin, daemon=True).start()
        tasks = []
        for client in self.clients:
            tasks.append(loop.create_task(self._run_client(client)))
            await asyncio.sleep(self.args.spread / max(1, len(self.clients)))
        print(json.dumps({"ready": True}), flush=True)
        while (line := await lines.get()).strip() != "quit":
            print(json.dumps(self._answer(line)), flush=True)
        for task in tasks:
            task.cancel()


class Swarm:
    """Drives `processes` child swarms from a test; all clients share one token."""

    def __init__(self, *, url: str, token: str, clients: int, mode: str, processes: int = 2,
                 after_id: int = 0, spread: float = 1.0, open_timeout: float = 10.0) -> None:
        self._procs: list[subprocess.Popen] = []
        per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        for count in per:
            if not count:
                continue
            self._procs.append(subprocess.Popen(
                [sys.executable, "-m", "faults.swarm", "--url", url, "--token", token, "--clients", str(count),
                 "--mode", mode, "--after-id", str(after_id), "--spread", str(spread),
                 "--open-timeout", str(open_timeout)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1))
        for proc in self._procs:
            assert json.loads(proc.stdout.readline()).get("ready"), "swarm child did not start"

    def _ask(self, line: str) -> list[dict]:
        for proc in self._procs:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        return [json.loads(proc.stdout.readline()) for proc in self._procs]

    def status(self) -> dict:
        answers = self._ask("status")
        closes: Counter[str] = Counter()
        for answer in answers:
            closes.update(answer["closes"])
        return {"open": sum(a["open"] for a in answers), "started": sum(a["started"] for a in answers),
                "accepted": sum(a["accepted"] for a in answers), "closes": dict(closes),
                "resyncs": sum(a["resyncs"] for a in answers)}

    def wait_open(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status()["open"] >= count:
                return True
            time.sleep(0.25)
        return False

    def compare(self, expected: list[int]) -> dict:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(expected, handle)
        try:
            answers = self._ask(f"expect {handle.name}")
        finally:
            os.unlink(handle.name)
        return {key: sum(a[key] for a in answers)
                for key in ("clients", "exact", "missing", "extra", "duplicates", "disorder")}

    def wait_exact(self, expected: list[int], timeout: float) -> tuple[float | None, dict]:
        """Seconds until every client holds exactly `expected` in order (None if not
        within `timeout`), and the last comparison."""
        started = time.monotonic()
        while True:
            report = self.compare(expected)
            if report["exact"] == report["clients"]:
                return time.monotonic() - started, report
            if time.monotonic() - started > timeout:
                return None, report
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self._procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--mode", choices=("backoff", "eager"), default="backoff")
    parser.add_argument("--after-id", type=int, default=0)
    parser.add_argument("--spread", type=float, default=1.0, help="seconds over which the clients first connect")
    parser.add_argument("--open-timeout", type=float, default=10.0)
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 256)), hard))
    asyncio.run(_SwarmProcess(args).main())


if __name__ == "__main__":
    main()
