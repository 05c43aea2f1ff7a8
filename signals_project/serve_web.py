"""One web process on a port that several web processes share.

    python -m signals_project.serve_web --host 0.0.0.0 --port 8000 [daphne options]

Why several: one process serves at most as many sockets as its open-file limit
allows (20,000 on our machines) and runs Python on one core. Why a shared port
rather than a balancer: each process opens its own listening socket with
SO_REUSEPORT, so the kernel spreads new connections over the processes by a hash of
the client's address and port, with no extra hop and nothing to configure. A
process that dies takes only its own connections with it; those clients reconnect,
land on a live process and resume from their last id (the delivery rule). Each
process subscribes to the doorbell itself, so a signal posted through one reaches
the clients of all. `bin/run` starts WEB_PROCESSES of these under supervision.

The socket is handed to daphne as an adopted file descriptor (daphne's `--fd`);
everything else about the process is plain daphne.
"""
from __future__ import annotations

import argparse
import importlib
import socket
import sys

APPLICATION = "signals_project.asgi:application"
_BACKLOG = 2048  # a reconnect storm queues here instead of being refused (the kernel caps it at somaxconn)


def shared_listening_socket(host: str, port: int, *, backlog: int = _BACKLOG) -> socket.socket:
    """A listening IPv4 TCP socket that other processes may bind to the same port."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise SystemExit("serve_web needs SO_REUSEPORT (Linux or BSD); run daphne directly on this system")
    try:
        socket.inet_aton(host)
    except OSError:
        raise SystemExit(f"serve_web binds IPv4 addresses; {host!r} is not one (use 0.0.0.0 or 127.0.0.1)") from None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror} "
                         "(another program, not started with SO_REUSEPORT, holds the port?)") from None
    sock.listen(backlog)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, daphne_args = parser.parse_known_args(argv)
    # daphne first: importing it installs Twisted's asyncio reactor, which must
    # happen before anything imports a reactor.
    from daphne.cli import CommandLineInterface

    # Then the application, warm-up included (signals_project.warmup), and only then
    # the socket: with SO_REUSEPORT the kernel hands a share of new connections to
    # every bound socket, so a process still importing Django would make its share
    # wait seconds in its backlog while the other processes are idle.
    importlib.import_module(APPLICATION.partition(":")[0])
    sock = shared_listening_socket(args.host, args.port)
    # Twisted adopts a duplicate of the descriptor; ours stays open (and referenced)
    # for the life of the process.
    CommandLineInterface().run(["--fd", str(sock.fileno()), *daphne_args, APPLICATION])


if __name__ == "__main__":
    main(sys.argv[1:])
