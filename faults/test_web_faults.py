"""Web process faults: SIGTERM and SIGKILL of web processes under steady publishing,
web processes sharing one port (bin/run's WEB_PROCESSES) covering for each other,
and the reconnect storm (every client of a SIGKILLed process comes back at once,
half backing off like the dashboard, half retrying eagerly like bots). Every client
must end with every signal id exactly once, in order."""
from __future__ import annotations

import json
import signal as os_signal
import time

import pytest

import psutil

from conftest import DaphneProcess, free_port
from faults.conftest import ApiPublisher, DirectPublisher, scaled, signal_ids
from faults.swarm import Swarm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

WEB_ENV = {"WS_WATCHDOG_SECONDS": "1", "LOG_LEVEL": "WARNING"}


def _report(name: str, **figures) -> None:
    # Printed for RELIABILITY.md (run with -s to see them).
    print(f"\nRELIABILITY {name}: {json.dumps(figures)}")


def _restart(server: DaphneProcess, sig: int) -> float:
    """Stop `server` with `sig` and start it again on the same port; returns the
    moment it listens again."""
    server.proc.send_signal(sig)
    try:
        server.proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - SIGTERM ignored mid-request: finish it off
        server.proc.kill()
        server.proc.wait()
    server.proc = None
    server.start(timeout=30)
    return time.monotonic()


def test_it_resumes_every_client_exactly_through_sigterm_and_sigkill_restarts(staff_api_token):
    token = staff_api_token
    servers = [DaphneProcess(extra_env=WEB_ENV).start() for _ in range(2)]
    count = scaled(300)
    swarms = [Swarm(url=f"{s.ws_url}/ws/signals/", token=token, clients=count // 2, mode="backoff", processes=1)
              for s in servers]
    publishers = [DirectPublisher(interval=0.05, source=f"writer{i}").start() for i in range(3)]
    try:
        for swarm in swarms:
            assert swarm.wait_open(count // 2, 60), swarm.status()
        time.sleep(1)
        _restart(servers[0], os_signal.SIGTERM)
        time.sleep(1)
        _restart(servers[1], os_signal.SIGKILL)
        time.sleep(1)
        _restart(servers[0], os_signal.SIGKILL)
        back = time.monotonic()
        time.sleep(1)
        for publisher in publishers:
            publisher.stop()
        expected = signal_ids()
        results = [swarm.wait_exact(expected, 30) for swarm in swarms]
        _report("web-restarts", clients=count, signals=len(expected),
                converged_seconds_after_last_restart=round(time.monotonic() - back, 1),
                reports=[r[1] for r in results], status=[s.status() for s in swarms])
        for seconds, report in results:
            assert seconds is not None, report
            assert report["duplicates"] == 0 and report["disorder"] == 0, report
    finally:
        for publisher in publishers:
            publisher.stop()
        for swarm in swarms:
            swarm.stop()
        for server in servers:
            server.stop()


def test_web_processes_sharing_a_port_split_the_clients_and_cover_for_each_other(staff_api_token):
    """Two serve_web processes on one port (SO_REUSEPORT): the kernel spreads the
    clients over both, a POST through either reaches every client, and when one is
    SIGKILLed its clients reconnect to the same address, land on the other and
    resume: every client ends with every signal exactly once, in order."""
    port = free_port()
    servers = [DaphneProcess(port=port, extra_env=WEB_ENV, shared_port=True).start() for _ in range(2)]
    count = scaled(200)
    swarm = Swarm(url=f"{servers[0].ws_url}/ws/signals/", token=staff_api_token, clients=count, mode="backoff",
                  processes=1)
    publisher = ApiPublisher(servers[:1], staff_api_token, interval=0.05).start()
    try:
        assert swarm.wait_open(count, 60), swarm.status()
        held = [server.connections(psutil.CONN_ESTABLISHED) for server in servers]
        assert all(held) and sum(held) >= count, f"clients per process: {held}"
        time.sleep(1)
        servers[0].proc.kill()
        servers[0].proc.wait()
        killed_at = time.monotonic()
        time.sleep(2)
        publisher.stop()
        expected = signal_ids()
        seconds, report = swarm.wait_exact(expected, 30)
        _report("shared-port", clients=count, clients_per_process_before=held, signals=len(expected),
                api_failures=publisher.failures, converged_seconds_after_kill=round(time.monotonic() - killed_at, 1),
                report=report)
        assert seconds is not None, (report, swarm.status())
        assert report["duplicates"] == 0 and report["disorder"] == 0, report
        # Everything the publisher was told was created is there (a POST cut off by the
        # kill is a refused request, never a half-written signal).
        assert set(publisher.created) <= set(expected)
        assert servers[1].connections(psutil.CONN_ESTABLISHED) >= count
    finally:
        publisher.stop()
        swarm.stop()
        for server in servers:
            server.stop()


def test_it_resumes_a_reconnect_storm_of_backoff_and_eager_clients_within_30_seconds(staff_api_token):
    token = staff_api_token
    server = DaphneProcess(extra_env=WEB_ENV).start()
    count = scaled(2000, minimum=40)
    url = f"{server.ws_url}/ws/signals/"
    swarms = [Swarm(url=url, token=token, clients=count // 2, mode=mode, processes=2, spread=5)
              for mode in ("backoff", "eager")]
    publisher = DirectPublisher(interval=0.1).start()
    try:
        deadline = time.monotonic() + 120
        while sum(s.status()["open"] for s in swarms) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sum(s.status()["open"] for s in swarms) == count, [s.status() for s in swarms]
        before = [s.status() for s in swarms]
        time.sleep(3)  # live traffic before the crash
        server.proc.kill()
        server.proc.wait()
        server.proc = None
        time.sleep(2)  # every client notices and starts retrying
        server.start(timeout=30)
        back = time.monotonic()
        time.sleep(2)
        publisher.stop()
        expected = signal_ids()
        results = [swarm.wait_exact(expected, max(1.0, 30 - (time.monotonic() - back))) for swarm in swarms]
        converged = round(time.monotonic() - back, 1)
        after = [s.status() for s in swarms]
        _report("reconnect-storm", clients=count, signals=len(expected), converged_seconds=converged,
                handshakes_started=sum(a["started"] - b["started"] for a, b in zip(after, before)),
                handshakes_accepted=sum(a["accepted"] - b["accepted"] for a, b in zip(after, before)),
                closes={mode: a["closes"] for mode, a in zip(("backoff", "eager"), after)},
                reports=[r[1] for r in results])
        for seconds, report in results:
            assert seconds is not None, report
            assert report["duplicates"] == 0 and report["disorder"] == 0, report
        assert converged <= 30
    finally:
        publisher.stop()
        for swarm in swarms:
            swarm.stop()
        server.stop()
