"""`manage.py pipeline_status`: one screen that says whether market data is flowing.

Reads what the other processes publish (readiness rows and candles in the
database, stream health and fallback state in Redis); it never talks to the
exchange itself.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from pipeline.feeds import health_store
from pipeline.health_facts import health_current
from pipeline.selectors import feed_lease_get, market_data_health
from pipeline.sessions import market_session
from signals.stats import stats_24h


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _clip(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(BaseCommand):
    help = ("Show the health score and its components, the active feed (and standbys' lease), markets, "
            "sessions, readiness, feed connections, stream health, candle freshness and the last 24 h.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the raw status as JSON")
        parser.add_argument("--reconnect", metavar="CONNECTION",
                            help="ask the running feed to reconnect this stream connection (a name from the "
                                 "Connections table, or 'all') and exit")
        parser.add_argument("--check", action="store_true",
                            help="health check for containers: exit 1 unless the feed process is publishing")

    def handle(self, *args, **opts):
        if opts["reconnect"]:
            self._reconnect(opts["reconnect"])
            return
        try:
            status = self._collect()
        except DatabaseError as exc:
            raise CommandError(f"cannot read the pipeline tables ({str(exc).strip().splitlines()[0]}); "
                               "is DATABASE_URL right and `manage.py migrate` done?") from None
        if opts["check"]:
            if status["redis_error"]:
                raise CommandError(f"Redis unreachable: {status['redis_error']}; check REDIS_URL")
            if status["feed"] is None:
                raise CommandError("the feed process has not published its health recently; is run_feed running?")
            self.stdout.write("feed ok")
            return
        if opts["json"]:
            self.stdout.write(json.dumps(status, indent=2, default=str))
            return
        self._print(status)

    def _reconnect(self, name: str) -> None:
        try:
            connections = {c.get("name") for c in health_store.feed_connections()}
            if health_store.feed_process() is None:
                raise CommandError("no feed process is publishing its health; is run_feed running?")
            if name != "all" and name not in connections:
                known = ", ".join(sorted(connections)) or "none"
                raise CommandError(f"no feed connection named {name!r}; known: {known}")
            health_store.feed_reconnect_request(connection=name, reason="operator request (pipeline_status)")
        except redis.RedisError as exc:
            raise CommandError(f"Redis unreachable ({exc}); check REDIS_URL") from None
        self.stdout.write(f"asked the feed to reconnect {name}; it acts within a second")

    def _collect(self) -> dict[str, Any]:

        now = timezone.now()
        status: dict[str, Any] = {"at": now.isoformat()}
        status["health"] = health_current(now=now)
        if status["health"]["database"]["status"] != "ok":
            raise CommandError(f"database unreachable ({status['health']['database']['reason']}); "
                               "check DATABASE_URL")
        lease = feed_lease_get()
        status["feed_lease"] = None if lease is None else {
            "holder": lease.holder, "acquired_at": lease.acquired_at.isoformat(),
            "heartbeat_age_seconds": round((now - lease.heartbeat_at).total_seconds(), 1)}
        status["last_24h"] = stats_24h(now=now)
        data = market_data_health(now=now)
        for market, info in data["markets"].items():
            info["session"] = market_session(market, now)
        status["markets"] = data["markets"]
        try:
            status["feed"] = health_store.feed_process()
            status["streams"] = health_store.feed_symbol_health(now=now.timestamp())
            status["connections"] = health_store.feed_connections()
            status["fallback"] = health_store.fallback_state_get()
            status["redis_error"] = None
        except Exception as exc:  # noqa: BLE001 - show what we can without Redis
            status.update(feed=None, streams={}, connections=[], fallback={},
                          redis_error=f"{type(exc).__name__}: {exc}")
        return status

    def _print_health(self, status: dict[str, Any]) -> None:
        out, health = self.stdout, status["health"]
        style = {"ok": self.style.SUCCESS, "degraded": self.style.WARNING}.get(health["status"], self.style.ERROR)
        out.write(style(f"Health: {health['status']} {health['score']}/100"
                        + (f" ({health['note']})" if health.get("note") else "")))
        rows = [[name, f"{c['points']}/{c['max']}", c["status"], _clip(c["reason"] or "-", 90)]
                for name, c in health["components"].items()]
        rows += [[name, "-", health[name]["status"], _clip(health[name]["reason"] or "-", 90)]
                 for name in ("database", "redis")]
        out.write(_table(["COMPONENT", "POINTS", "STATUS", "REASON"], rows))
        lease = status["feed_lease"]
        if lease is None:
            out.write("Feed lease: never taken (no run_feed has started against this database)")
        else:
            out.write(f"Feed lease: {lease['holder']} since {lease['acquired_at']}, "
                      f"heartbeat {_ago(lease['heartbeat_age_seconds'])} ago")
        day = status["last_24h"]
        signals = day.get("signals", {})
        out.write("\nLast 24 h: {} signals ({}); {} market updates ({})".format(
            signals.get("total", 0),
            ", ".join(f"{k} {v}" for k, v in sorted(signals.get("by_source", {}).items())) or "none",
            day.get("market_updates", {}).get("total", 0),
            ", ".join(f"{k} {v}" for k, v in sorted(day.get("market_updates", {}).get("by_market", {}).items()))
            or "none"))

    def _print(self, status: dict[str, Any]) -> None:
        now = time.time()
        out = self.stdout
        self._print_health(status)
        out.write("")
        feed = status["feed"]
        if status["redis_error"]:
            out.write(self.style.ERROR(f"Redis unreachable ({status['redis_error']}): stream state unknown"))
        elif feed is None:
            out.write(self.style.WARNING("Feed process: not running (no health published in the last seconds)"))
        else:
            stats = feed.get("stats", {})
            out.write(self.style.SUCCESS(
                f"Feed process: running (pid {feed.get('pid')}, up {_ago(now - feed.get('started_at', now))}, "
                f"{feed.get('ws_url')}) · {feed.get('messages_per_second', 0):.1f} msg/s · "
                f"{feed.get('trades_per_second', 0):.1f} trades/s · {stats.get('malformed', 0)} malformed skipped"))

        out.write("\nMarkets")
        rows = []
        for market, info in sorted(status["markets"].items()):
            session = info["session"]
            if session["open"]:
                when = "open 24/7" if session["next_close"] is None else f"open until {session['next_close']}"
            else:
                when = f"closed, opens {session['next_open']}"
            readiness = info["readiness"]
            rows.append([market, when, readiness["state"], _clip(readiness["reason"])])
        out.write(_table(["MARKET", "SESSION", "READINESS", "REASON"], rows))

        out.write("\nSymbols")
        rows = []
        for market, info in sorted(status["markets"].items()):
            for symbol, sym in sorted(info["symbols"].items()):
                stream = status["streams"].get(symbol)
                if stream is None:
                    stream_text, last = ("not streamed" if not info["session"]["open"] else "DOWN"), None
                else:
                    stream_text = "healthy" if stream["healthy"] else f"STALE ({stream['state']})"
                    last = stream.get("last_message_at")
                poll = status["fallback"].get(symbol)
                rows.append([
                    symbol, market, stream_text, _ago(now - last) if last else "-",
                    f"polling ({poll.get('polls', 0)} polls)" if poll else "-",
                    _ago(sym["newest_candle_age_seconds"]) + ("" if sym["fresh"] else " (stale)"),
                ])
        out.write(_table(["SYMBOL", "MARKET", "STREAM", "LAST MSG", "REST FALLBACK", "NEWEST CANDLE"], rows))

        out.write("\nConnections")
        rows = []
        for conn in status["connections"]:
            h = conn.get("health", {})
            rows.append([
                conn["name"], conn["state"], _ago(now - conn.get("state_since", now)),
                str(len(conn.get("streams", []))), str(h.get("messages", 0)), str(h.get("reconnects", 0)),
                str(h.get("malformed", 0)),
                _ago(now - h["last_ping_at"]) if h.get("last_ping_at") else "-",
                _clip(h.get("last_error") or "-", 50),
            ])
        out.write(_table(["NAME", "STATE", "FOR", "STREAMS", "MESSAGES", "RECONNECTS", "MALFORMED",
                          "LAST PING", "LAST ERROR"], rows) if rows else "(none)")
        if feed:
            states = feed.get("stats", {}).get("states", {})
            out.write("States: " + ", ".join(f"{k}={v}" for k, v in states.items()))
