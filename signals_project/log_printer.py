"""Prints the output of bin/run's processes, each line prefixed with its process name.

Why: supervisord (signals_project.supervision) writes its children's output as is, so
a newcomer could not tell the web process's lines from the feed's. supervisord's own
hook for this is an event listener: it sends every chunk of a child's output as a
PROCESS_LOG event (over this process's stdin/stdout, in its listener protocol), and we
write the chunk's complete lines to stderr as `web      | line`, which supervisord
passes to the terminal. Chunks are not line-aligned (nor character-aligned), so a
partial last line waits for the rest (per process and channel).
"""
from __future__ import annotations

import sys
from typing import BinaryIO

_READY = b"READY\n"
_OK = b"RESULT 2\nOK"
NAME_WIDTH = 9


def _headers(line: bytes) -> dict[str, str]:
    return dict(token.split(":", 1) for token in line.decode("utf-8", "replace").split())


def prefixed(name: str, text: str) -> str:
    return "".join(f"{name:<{NAME_WIDTH}}| {line}\n" for line in text.split("\n"))


def run(stdin: BinaryIO, stdout: BinaryIO, out) -> None:
    """Serve events until stdin closes (supervisord stopping)."""
    pending: dict[tuple[str, str], bytes] = {}
    while True:
        stdout.write(_READY)
        stdout.flush()
        line = stdin.readline()
        if not line:
            return
        headers = _headers(line)
        payload = stdin.read(int(headers["len"]))
        if headers.get("eventname", "").startswith("PROCESS_LOG"):
            header_line, _, data = payload.partition(b"\n")
            about = _headers(header_line)
            key = (about.get("processname", "?"), about.get("channel", "stdout"))
            # Split as bytes: a chunk may also end inside a multi-byte character.
            complete, _, rest = (pending.pop(key, b"") + data).rpartition(b"\n")
            if rest:
                pending[key] = rest
            if complete:
                out.write(prefixed(key[0], complete.decode("utf-8", "replace")))
                out.flush()
        stdout.write(_OK)
        stdout.flush()


if __name__ == "__main__":
    run(sys.stdin.buffer, sys.stdout.buffer, sys.stderr)
