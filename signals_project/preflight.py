"""Fail fast, with a message that says what to fix, when PostgreSQL or Redis is
unreachable. Used by bin/test (and bin/run when the real servers are configured)."""
from __future__ import annotations

import argparse
import os
import sys


def _check_postgres(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL at DATABASE_URL={url!r} is unreachable: {exc}".strip()
    return None


def _check_redis(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis at REDIS_URL={url!r} is unreachable: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--require-postgres", action="store_true")
    args = parser.parse_args(argv)
    problems = []
    db = os.environ.get("DATABASE_URL", "")
    if args.require_postgres and not db.startswith(("postgres://", "postgresql://")):
        problems.append(f"the test suite needs PostgreSQL: set DATABASE_URL=postgres://... (got {db!r})")
    elif db.startswith(("postgres://", "postgresql://")):
        problems.append(_check_postgres(db))
    problems.append(_check_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")))
    problems = [p for p in problems if p]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
