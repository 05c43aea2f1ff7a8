"""Outbound HTTP for deliveries: timeouts on every request, and no way to a private
address through a user-supplied URL (SSRF).

A user-supplied webhook URL is resolved here and every address it resolves to must
be public; the connection then goes to that checked address (TLS still verifies the
certificate for the hostname), so a DNS answer that changes between the check and
the connect (DNS rebinding) cannot steer the request to an internal host.
`WEBHOOK_ALLOW_PRIVATE=1` lifts the rule (and allows plain http) for internal
receivers and tests. Operator-configured bases (Telegram, Discord) are trusted.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

_MAX_RESPONSE_BYTES = 64 * 1024
_MAX_POOLS = 256
_BOT_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")


class _RedactBotTokens(logging.Filter):
    """urllib3 logs each request line at DEBUG, and a Telegram path carries the bot
    token: rewrite it before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _BOT_TOKEN_IN_PATH.sub("/bot[redacted]/", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactBotTokens())


class OutboundRefused(Exception):
    """The target is not allowed (scheme, private address, unresolvable host)."""


class OutboundError(Exception):
    """The request did not produce an HTTP answer (timeout, refused, TLS...)."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    text: str
    latency_ms: int = 0


def _address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this address is not a public unicast one, or None when it is."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for attr, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return label
    if not ip.is_global:
        return "not public"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"cannot resolve host {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundRefused(f"host {host!r} has no address")
    return addresses


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address to connect to


def target_check(url: str, *, allow_private: bool | None = None) -> Target:
    """Parse and vet a user-supplied URL; returns where to connect.

    Raises OutboundRefused with a reason a user can act on.
    """
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"not a valid URL: {exc}") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise OutboundRefused("only https URLs are allowed")
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    if parts.username or parts.password:
        raise OutboundRefused("credentials in the URL are not allowed")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(parts.hostname, port)
    if not allow_private:
        for address in addresses:
            problem = _address_problem(ipaddress.ip_address(address.split("%")[0]))
            if problem:
                raise OutboundRefused(
                    f"{parts.hostname} resolves to {address}, a {problem} address: only public addresses are allowed"
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, path=path, address=addresses[0])


class OutboundClient:
    """Keeps a small pool of keep-alive connections per (address, host) so a burst
    of deliveries to one receiver reuses its connections. One per process."""

    def __init__(self, *, timeout: float | None = None):
        self._timeout = timeout
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            timeout = self._timeout if self._timeout is not None else settings.DELIVERY_TIMEOUT_SECONDS
            options = dict(timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout), retries=False,
                           maxsize=8, block=False)
            if target.scheme == "https":
                # Connect to the checked address, verify the certificate for the name.
                pool = urllib3.HTTPSConnectionPool(target.address, target.port, server_hostname=target.host,
                                                   assert_hostname=target.host, **options)
            else:
                pool = urllib3.HTTPConnectionPool(target.address, target.port, **options)
            self._pools[key] = pool
            while len(self._pools) > _MAX_POOLS:
                self._pools.popitem(last=False)[1].close()
            return pool

    def post(self, url: str, *, body: bytes, headers: dict[str, str], guard: bool) -> HttpAnswer:
        """POST `body`; `guard` applies the public-address rule to `url` (checked
        again on every call, so a host that starts resolving privately is refused).

        Raises OutboundRefused or OutboundError; any HTTP status is an answer.
        """
        if guard:
            target = target_check(url)
        else:
            target = target_check(url, allow_private=True)
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        if ":" in target.host and not host_header.startswith("["):
            host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
        started = time.perf_counter()
        try:
            response = self._pool(target).urlopen(
                "POST", target.path, body=body, headers={**headers, "Host": host_header},
                redirect=False, preload_content=False, assert_same_host=False,
            )
            try:
                raw = response.read(_MAX_RESPONSE_BYTES, decode_content=True)
            finally:
                response.drain_conn()
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise OutboundError(_describe(exc)) from None
        latency_ms = int((time.perf_counter() - started) * 1000)
        return HttpAnswer(status=response.status, headers={k.lower(): v for k, v in response.headers.items()},
                          text=raw.decode("utf-8", errors="replace"), latency_ms=latency_ms)


def _describe(exc: Exception) -> str:
    """A short reason without the URL (a Telegram URL carries the bot token)."""
    reason = getattr(exc, "reason", None) or exc
    name = type(reason).__name__
    if isinstance(reason, urllib3.exceptions.TimeoutError) or "Timeout" in name:
        return "timed out"
    if isinstance(reason, urllib3.exceptions.NewConnectionError) or "ConnectionRefused" in name:
        return "connection refused or unreachable"
    if "SSL" in name:
        return "TLS error"
    return name
