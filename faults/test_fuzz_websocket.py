"""WebSocket frame fuzzing (hypothesis) against a real daphne: garbage, huge, binary,
wrong types and floods each get the documented answer (an error frame, or a close
with its code and reason), while the server and other clients carry on."""
from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, given, settings, strategies as st

from faults.conftest import SIGNAL_BODY
from signals.consumers import CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED, MAX_CLIENT_ERRORS, MAX_CLIENT_MESSAGE_BYTES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FRAMES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=200),
    st.text(min_size=MAX_CLIENT_MESSAGE_BYTES - 8, max_size=MAX_CLIENT_MESSAGE_BYTES + 64),
    _json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["ping", "ack", "hack", ""]), st.integers(),
                                             st.none())},
                          optional={"id": _json_values}).map(json.dumps),
)


def _expected(frame: str | bytes) -> tuple[str, object]:
    """("close", code) or ("frame", error code / "pong") or ("nothing", None)."""
    if isinstance(frame, bytes):
        return "close", CLOSE_UNSUPPORTED
    if len(frame.encode("utf-8")) > MAX_CLIENT_MESSAGE_BYTES:
        return "close", CLOSE_TOO_BIG
    try:
        message = json.loads(frame)
    except ValueError:
        return "frame", "malformed_json"
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "frame", "bad_message"
    if message["type"] == "ping":
        return "frame", "pong"
    if message["type"] == "ack":
        value = message.get("id")
        valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
        return ("nothing", None) if valid else ("frame", "bad_ack")
    return "frame", "unknown_type"


async def _answer(ws) -> tuple[str, object]:
    try:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
    except websockets.ConnectionClosed as exc:
        return "close", exc.rcvd.code if exc.rcvd else None
    except asyncio.TimeoutError:
        return "nothing", None
    return "frame", "pong" if reply["type"] == "pong" else reply.get("code")


def test_it_answers_every_fuzzed_frame_as_documented(shared_daphne, staff_api_token):
    headers = {"Authorization": f"Token {staff_api_token}"}
    url = f"{shared_daphne.ws_url}/ws/signals/"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frame=FRAMES)
    def _check(frame):
        async def _one():
            async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
                await ws.send(frame)
                kind, detail = _expected(frame)
                if kind == "nothing":
                    await ws.send('{"type":"ping"}')  # still alive and serving
                    assert await _answer(ws) == ("frame", "pong")
                else:
                    assert await _answer(ws) == (kind, detail), frame[:80]

        asyncio.run(_one())

    _check()


async def test_it_closes_a_flood_of_garbage_and_keeps_serving_everyone_else(shared_daphne, staff_api_token):
    from signals.services import signal_create

    headers = {"Authorization": f"Token {staff_api_token}"}
    url = f"{shared_daphne.ws_url}/ws/signals/"
    async with websockets.connect(url, additional_headers=headers) as flooder, \
            websockets.connect(url, additional_headers=headers) as bystander:
        for _ in range(MAX_CLIENT_ERRORS + 200):
            try:
                await flooder.send("{garbage")
            except websockets.ConnectionClosed:
                break
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(flooder.recv(), 10)
        assert closed.value.rcvd.code == CLOSE_POLICY
        # A ping flood is answered, frame for frame.
        for _ in range(500):
            await bystander.send('{"type":"ping"}')
        pongs = [json.loads(await asyncio.wait_for(bystander.recv(), 10)) for _ in range(500)]
        assert all(p == {"type": "pong"} for p in pongs)
        new_id = await database_sync_to_async(lambda: signal_create(**SIGNAL_BODY).signal.id)()
        frame = json.loads(await asyncio.wait_for(bystander.recv(), 10))
        assert frame["type"] == "new_signal" and frame["signal"]["id"] == new_id
