"""Ids become visible in commit order (real PostgreSQL, real threads and connections).

A client that has seen id N asks for id > N. If two creators could commit ids 11 then
10, a reader polling in between would pass 10 and never see it. The writers here keep
their transaction open a little after signal_create returns (as a caller doing more
work in the same transaction would), which makes that interleaving likely unless
creation is serialized until COMMIT.
"""
from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from signals.services import signal_create

WRITERS = 4
PER_WRITER = 40


def _writer(barrier: threading.Barrier, created: list[int], errors: list[BaseException], seed: int) -> None:
    rng = random.Random(seed)
    try:
        barrier.wait(timeout=10)
        for _ in range(PER_WRITER):
            with transaction.atomic():
                signal = signal_create(symbol="BTCUSDT", direction="long", entry_price="100", stop_loss="90",
                                       take_profit="120", confidence=50, source=f"writer-{seed}").signal
                time.sleep(rng.uniform(0, 0.003))  # commit a moment later
            created.append(signal.id)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        connection.close()


def _reader(token: str, stop: threading.Event, batches: list[list[int]], errors: list[BaseException]) -> None:
    """Poll the API's catch-up read like a reconnecting client: after_id = last id seen."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    last_seen = 0
    try:
        while True:
            finishing = stop.is_set()  # read once more after the writers are done
            response = client.get(f"/api/signals/?after_id={last_seen}&page_size=500")
            assert response.status_code == 200, response.content
            ids = [row["id"] for row in response.json()["results"]]
            if ids:
                batches.append(ids)
                last_seen = ids[-1]
            if finishing and not response.json()["next"]:
                return
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_it_makes_ids_visible_in_commit_order_to_a_concurrent_reader(instruments, reader_user):
    token = Token.objects.create(user=reader_user).key
    created: list[int] = []
    batches: list[list[int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(WRITERS)
    reader = threading.Thread(target=_reader, args=(token, stop, batches, errors))
    writers = [threading.Thread(target=_writer, args=(barrier, created, errors, i)) for i in range(WRITERS)]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    stop.set()
    reader.join(timeout=30)
    assert not errors, errors
    assert len(created) == WRITERS * PER_WRITER

    seen = [i for batch in batches for i in batch]
    # Each batch is ascending and starts above everything seen before it...
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    # ...and nothing was skipped: an id that became visible after the reader had moved
    # past it would be missing here.
    missed = sorted(set(created) - set(seen))
    assert not missed, f"reader never saw {len(missed)} signals committed late with smaller ids: {missed[:10]}"
    assert set(seen) == set(created)
    # The reader really ran alongside the writers (many small polls, not one at the end).
    assert len(batches) >= 10
