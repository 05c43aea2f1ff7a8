"""The log printer speaks supervisord's event-listener protocol and prints whole
lines, each prefixed with its process name, even when chunks split lines or
characters."""
from __future__ import annotations

import io

from signals_project.log_printer import run


def _event(process: str, data: bytes, serial: int) -> bytes:
    payload = f"processname:{process} groupname:{process} pid:42 channel:stdout\n".encode() + data
    header = f"ver:3.0 server:supervisor serial:{serial} pool:output poolserial:{serial} " \
             f"eventname:PROCESS_LOG_STDOUT len:{len(payload)}\n".encode()
    return header + payload


def test_it_prefixes_whole_lines_with_the_process_name():
    price = "€ 65000".encode()
    stream = b"".join([
        _event("web", b"GET /health/live/ 200\nstarting ", 1),
        _event("feed", b"conn-1: connected\n", 2),
        _event("web", b"done " + price[:2], 3),  # a line and a character split across chunks
        _event("web", price[2:] + b"\n", 4),
    ])
    protocol, out = io.BytesIO(), io.StringIO()
    run(io.BytesIO(stream), protocol, out)
    assert out.getvalue().splitlines() == [
        "web      | GET /health/live/ 200",
        "feed     | conn-1: connected",
        "web      | starting done € 65000",
    ]
    # READY before each event, OK after each, READY again while waiting for the next.
    assert protocol.getvalue() == b"READY\n" + b"RESULT 2\nOKREADY\n" * 4
