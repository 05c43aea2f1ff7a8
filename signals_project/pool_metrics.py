"""/metrics series for this process's PostgreSQL connection pool.

A pooled connection that some code path never hands back is lost to the pool for
good (psycopg_pool cannot tell a forgotten connection from a busy one), and the
process then answers 503 once the pool is dry. `db_pool_connections{state="in_use"}`
that only grows while traffic is flat is that leak, visible long before it bites.
"""
from __future__ import annotations

from typing import Iterable

from prometheus_client.core import GaugeMetricFamily


class DatabasePoolCollector:
    def describe(self) -> list:
        return []  # collected on demand; nothing to check at registration

    def collect(self) -> Iterable:
        from django.db import connections

        pool = getattr(connections["default"], "pool", None)  # None: SQLite, or DB_POOL_MAX_SIZE=0
        if pool is None or pool.closed:
            return
        stats = pool.get_stats()
        states = GaugeMetricFamily("db_pool_connections", "PostgreSQL pool connections of this process, by state",
                                   labels=["state"])
        states.add_metric(["in_use"], stats.get("pool_size", 0) - stats.get("pool_available", 0))
        states.add_metric(["idle"], stats.get("pool_available", 0))
        yield states
        yield GaugeMetricFamily("db_pool_max_connections", "Most connections this process's pool may open",
                                value=stats.get("pool_max", 0))
        yield GaugeMetricFamily("db_pool_requests_waiting", "Requests waiting for a pooled connection now",
                                value=stats.get("requests_waiting", 0))
