"""The indexed book decides exactly what the engine decides trade by trade: random
tapes, hundreds of signals with ladders and every stop rule, created while the tape
runs, amendments included; plus the suffix extremes it relies on."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from pipeline.outcomes.book import OutcomeBook, Tracked, at_of
from pipeline.outcomes.engine import apply_event, apply_trade, levels_build, state_new
from pipeline.outcomes.extremes import SuffixExtreme
from pipeline.outcomes.records import outcome_record

T0 = 1_795_000_000_000
RULES = (None, {"type": "breakeven", "after_target": 1}, {"type": "breakeven", "after_target": 2},
         {"type": "trail_targets"}, {"type": "trailing", "distance_pct": "0.3"},
         {"type": "trailing", "distance_pct": "0.7"})


def _levels(rng: random.Random, price: Decimal, created_ms: int, expires: bool):
    direction = rng.choice(("long", "short"))
    sign = 1 if direction == "long" else -1
    step = (price * Decimal(str(rng.uniform(0.002, 0.015)))).quantize(Decimal("0.01"))
    count = rng.choice((1, 2, 3))
    portions = {1: ["1"], 2: ["0.5", "0.5"], 3: ["0.5", "0.3", "0.2"]}[count]
    targets = [{"price": str(price + sign * step * (k + 1)), "portion": p} for k, p in enumerate(portions)]
    expires_at = at_of(created_ms + rng.randint(50, 500)) if expires else None
    return levels_build(direction=direction, entry=price, stop=price - sign * step, targets=targets,
                        stop_rule=rng.choice(RULES), created_at=at_of(created_ms), expires_at=expires_at)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_decides_every_signal_exactly_as_the_engine_on_every_trade(seed):
    rng = random.Random(seed)
    price = 1000.0
    tape = []
    for i in range(6_000):
        price *= 1 + rng.gauss(0, 2e-4)
        tape.append((T0 + i, Decimal(f"{price:.2f}")))
    # Signals appear while the tape runs: (index of the trade after which it is made, levels).
    births = sorted(rng.randrange(0, 5_000) for _ in range(300))
    book = OutcomeBook()
    reference: dict[int, tuple] = {}
    mine: dict[int, Tracked] = {}
    amend_at = {}
    pending = list(enumerate(births))
    for index, (ts, trade_price) in enumerate(tape):
        while pending and pending[0][1] == index:
            sid, _ = pending.pop(0)
            created = ts + rng.choice((-1, 0))   # at or just before the last trade: "between two trades"
            levels = _levels(rng, trade_price, created, expires=sid % 5 == 0)
            reference[sid] = (levels, state_new(levels))
            tracked = mine[sid] = Tracked(signal_id=sid, symbol="X", levels=levels, state=state_new(levels))
            book.replay(tracked)
            book.add(tracked)
            if sid % 7 == 0:
                amend_at.setdefault(index + rng.randint(5, 100), sid)
        if index in amend_at:
            sid = amend_at.pop(index)
            at = at_of(ts) + dt.timedelta(microseconds=500)   # between this trade and the next
            levels, state = reference[sid]
            event = (len(amend_at) + index, "close", at, None)   # (event id, kind, time, price)
            apply_event(levels, state, kind="close", at=at)
            book.apply_event_live(sid, event)
        for levels, state in reference.values():
            apply_trade(levels, state, price=trade_price, at=at_of(ts))
        book.apply_trade("X", ts, trade_price)
    decided = 0
    for sid, (levels, state) in reference.items():
        tracked = mine[sid]
        book.sync(tracked)
        assert _strip(outcome_record(levels, tracked.state)) == _strip(outcome_record(levels, state)), sid
        decided += state.status != "open"
    assert decided > 100 and {state.status for _, state in reference.values()} >= {
        "tp_hit", "sl_hit", "expired", "closed", "open"}


def _strip(record: dict) -> dict:
    record = dict(record)
    record.pop("evaluated_until")
    # A rule's move still pending when trades were skipped is the same stop in force.
    state = {k: v for k, v in record["state"].items() if k not in ("last_price", "pending_stop")}
    state["stop"] = record["state"]["pending_stop"] or record["state"]["stop"]
    record["state"] = state
    return record


def test_it_keeps_suffix_maxima_and_minima():
    highs, lows = SuffixExtreme(highest=True), SuffixExtreme(highest=False)
    prices = [5, 3, 4, 1, 2, 6, 2]
    for i, p in enumerate(prices):
        highs.push(i, Decimal(p))
        lows.push(i, Decimal(p))
    for after in range(-1, len(prices)):
        rest = prices[after + 1:]
        assert highs.since(after) == (max(rest) if rest else None)
        assert lows.since(after) == (min(rest) if rest else None)
    assert highs.latest_reaching(Decimal(4)) == 5          # the 6 at index 5
    assert lows.latest_reaching(Decimal(2)) == 6
    assert highs.latest_reaching(Decimal(7)) is None
    highs.prune(4)
    assert highs.since(-1) == 6
