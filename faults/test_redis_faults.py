"""Redis faults: the channel layer's Redis (a private redis-server on a free port) is
SIGKILLed and restarted several times while 300 clients across two web processes
watch and several threads publish through the API. The API keeps creating signals
while Redis is down, the web processes reconnect by themselves, and every client
ends with every signal id exactly once, in order, within 10 s of Redis returning."""
from __future__ import annotations

import json
import time

import pytest

from conftest import DaphneProcess, RedisProcess
from faults.conftest import ApiPublisher, scaled, signal_ids
from faults.swarm import Swarm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

KILLS = 3
DOWN_SECONDS = 3.0


def test_it_loses_and_duplicates_nothing_across_redis_kills(staff_api_token):
    token = staff_api_token
    redis_server = RedisProcess().start()
    env = {"REDIS_URL": redis_server.url, "WS_WATCHDOG_SECONDS": "1", "LOG_LEVEL": "WARNING"}
    servers = [DaphneProcess(extra_env=env).start() for _ in range(2)]
    count = scaled(300)
    swarms = [Swarm(url=f"{s.ws_url}/ws/signals/", token=token, clients=count // 2, mode="backoff", processes=1)
              for s in servers]
    publishers = [ApiPublisher(servers, token, interval=0.1).start() for _ in range(3)]
    created_while_down = 0
    try:
        for swarm in swarms:
            assert swarm.wait_open(count // 2, 60), swarm.status()
        time.sleep(2)
        for _ in range(KILLS):
            redis_server.stop()
            at_kill = sum(len(p.created) for p in publishers)
            time.sleep(DOWN_SECONDS)
            created_while_down += sum(len(p.created) for p in publishers) - at_kill
            redis_server.start()
            back = time.monotonic()
            time.sleep(2)
        for publisher in publishers:
            publisher.stop()
        expected = signal_ids()
        results = [swarm.wait_exact(expected, max(1.0, 10 - (time.monotonic() - back))) for swarm in swarms]
        converged = round(time.monotonic() - back, 1)
        print(f"\nRELIABILITY redis-kills: " + json.dumps({
            "clients": count, "kills": KILLS, "down_seconds": DOWN_SECONDS, "signals": len(expected),
            "created_while_redis_down": created_while_down, "converged_seconds_after_last_return": converged,
            "api_failures": [p.failures for p in publishers], "reports": [r[1] for r in results]}))
        assert created_while_down > 0, "the API must keep creating signals while Redis is down"
        assert all(not p.failures for p in publishers), [p.failures for p in publishers]
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
        redis_server.stop()
