"""The live outcome tracker: runs in the feed process on its own thread.

Trades are not stored, so the process that streams them is the one that can decide
outcomes by "the first trade after created_at that reaches a level". The feed's
batcher hands every ingested batch to `feed()` (a queue put, so ingestion never waits
for outcome work); this thread applies the trades in order per symbol through the
OutcomeBook and persists only signals whose state changed.

New signals and amendments are picked up by polling the database once per cycle
(every `poll_interval`, 0.25 s like the feed's batches): one indexed `id > last`
query each. Polling, rather than the channel layer's doorbell, keeps working while
Redis is down and cannot miss a row (signal ids become visible in commit order);
trades applied before a new signal was seen are replayed to it from memory. An
amendment is applied when read, so from the next cycle's trades on; one made in the
fraction of a second between a hit and its write is recorded but the tape has
already decided (the hit stands: it came first). Amendment ids are not serialized
at commit, so each poll looks back over the last 30 s of ids.

Time the stream did not cover (the process was down, a socket dropped and REST
backfilled the candles) is decided by stored 1m candles with the candle rule: the
feed calls `hold(symbols)` when it starts a backfill and `candles_filled(symbol)`
when it is stored; meanwhile that symbol's trades wait here, then the complete
minutes between the last applied trade (or the stored `evaluated_until`) and the
first new trade are applied, then the waiting trades. At start every symbol is held
until its first backfill (or `catchup_wait`). Expiry is decided on the trade past
`expires_at`, or by the clock `expiry_grace` seconds after it when no trade comes.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from django.db import close_old_connections, connections

from pipeline.market_data import Trade

from .book import OutcomeBook, Tracked, at_of, evaluated_ms, ms_of
from .selectors import candles_between, close_before, event_last_id, events_after, outcomes_open
from .services import outcome_progress_save_many

logger = logging.getLogger(__name__)

# Amendment ids are not serialized at commit like signal ids, so an id can become
# visible after a larger one; every poll looks back over ids seen this long ago.
EVENT_LOOKBACK_SECONDS = 30.0


def _exchange_order(trade: Trade) -> tuple[int, int]:
    return (trade.ts_ms, trade.trade_id)


@dataclass(slots=True)
class _Hold:
    since: float                                   # time.monotonic() when held
    trades: list = field(default_factory=list)     # (ts_ms, price) waiting in order


class OutcomeTracker:
    def __init__(self, *, clock: Callable[[], float] = time.time, poll_interval: float = 0.25,
                 catchup_wait: float = 30.0, expiry_grace: float = 5.0, trailing_interval: float = 5.0):
        self.clock = clock          # market time (seconds), for expiry without trades
        self.poll_interval = poll_interval
        self.catchup_wait = catchup_wait
        self.expiry_grace = expiry_grace
        # A trailing stop follows skipped trades: its moves are written this often.
        self.trailing_interval = trailing_interval
        self._trailing_at = time.monotonic()
        self.book = OutcomeBook()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loaded = False
        self._loaded_at = 0.0
        self._last_signal_id = 0
        self._event_low = 0
        self._event_marks: deque = deque()         # (monotonic, largest event id seen then)
        self._events_seen: set[int] = set()
        self._held: dict[str, _Hold] = {}
        self._released: set[str] = set()           # symbols whose start-up catch-up is done
        self._retry: list[Tracked] = []
        # Amendments of symbols waiting for candles, applied in time order at the catch-up.
        self._backlogs: dict[int, list] = {}
        self._newest: dict[str, tuple[int, int]] = {}   # symbol -> (time, id) of the newest trade taken
        self.counters = {"trades": 0, "stale_trades": 0, "persisted": 0, "decided": 0, "persist_errors": 0,
                         "catchups": 0}

    # --- the feed's side (any thread; O(1), never blocks) --------------------------------

    def feed(self, trades: list[Trade]) -> None:
        """Hand over an ingested batch (in arrival order)."""
        if trades:
            self._inbox.put(("trades", trades))

    def hold(self, symbols: Iterable[str]) -> None:
        """A backfill of these symbols starts: their trades wait for its candles."""
        self._inbox.put(("hold", list(symbols)))

    def candles_filled(self, symbol: str, until_ms: int) -> None:
        """The backfill of `symbol` stored its closed minutes up to `until_ms`."""
        self._inbox.put(("filled", symbol, until_ms))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outcome-tracker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Apply and persist what was handed over, then stop the thread."""
        self._stopping.set()
        self._inbox.put(("wake",))
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                messages = self._drain(self.poll_interval)
                try:
                    # A long-lived thread must drop connections the server closed.
                    close_old_connections()
                    self.step(messages)
                except Exception:  # noqa: BLE001 - the DB may be back next cycle; trades kept
                    logger.exception("outcome tracking step failed; retrying")
                    self._requeue(messages)
                    time.sleep(min(1.0, self.poll_interval * 4))
                if self._stopping.is_set() and self._inbox.empty():
                    break
        finally:
            connections.close_all()

    def _drain(self, timeout: float) -> list[tuple]:
        messages = []
        try:
            messages.append(self._inbox.get(timeout=timeout))
            while True:
                messages.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        return messages

    def _requeue(self, messages: list[tuple]) -> None:
        # A failed step (database away) must not lose trades: put them back in front.
        rest = self._drain(0)
        for message in messages + rest:
            self._inbox.put(message)

    def step(self, messages: Iterable[tuple] = ()) -> None:
        """One cycle: learn new signals and amendments, apply the handed-over trades and
        holds, expire by the clock, persist what changed. Tests call it directly."""
        if not self._loaded:
            self._load()
        self._poll()
        for message in messages:
            kind = message[0]
            if kind == "trades":
                self._trades(message[1])
            elif kind == "hold":
                for symbol in message[1]:
                    self._held.setdefault(symbol, _Hold(since=time.monotonic()))
            elif kind == "filled":
                self._release(message[1], why="candles stored")
        for symbol, hold in list(self._held.items()):
            if time.monotonic() - hold.since > self.catchup_wait:
                self._release(symbol, why=f"no backfill within {self.catchup_wait:.0f}s")
        self._expire_by_clock()
        if self._stopping.is_set() or time.monotonic() - self._trailing_at > self.trailing_interval:
            self._trailing_at = time.monotonic()
            self.book.trailing_moved()
        self._persist()

    # --- signals and amendments ------------------------------------------------------------

    def _load(self) -> None:
        self._event_low = event_last_id()
        tracked = outcomes_open()
        if tracked:
            self._adopt(tracked)
        self._loaded = True
        self._loaded_at = time.monotonic()
        logger.info("outcome tracker: %d open signals on %d symbols", len(tracked), len(self.book.symbols()))

    def _poll(self) -> None:
        new = outcomes_open(after_signal_id=self._last_signal_id)
        if new:
            self._adopt(new)
        now = time.monotonic()
        while self._event_marks and now - self._event_marks[0][0] > EVENT_LOOKBACK_SECONDS:
            self._event_low = max(self._event_low, self._event_marks.popleft()[1])
        rows = [r for r in events_after(after_id=self._event_low) if r.id not in self._events_seen]
        self._events_seen = {i for i in self._events_seen if i > self._event_low}
        for row in rows:
            self._events_seen.add(row.id)
            tracked = self.book.tracked.get(row.signal_id)
            if tracked is None:
                continue
            if not self.is_live(tracked.symbol):
                self._backlog(tracked).append(row.as_tape())
            else:
                self.book.apply_event_live(row.signal_id, row.as_tape())
        if rows:
            self._event_marks.append((now, max(r.id for r in rows)))

    def _backlog(self, tracked: Tracked) -> list:
        return self._backlogs.setdefault(tracked.signal_id, [])

    def is_live(self, symbol: str) -> bool:
        """Whether trades of `symbol` are applied as they come (not held for candles)."""
        return symbol in self._released and symbol not in self._held

    def _adopt(self, tracked: list[Tracked]) -> None:
        """Start tracking signals: their pending amendments go with them; a signal whose
        symbol already streamed past its evaluated point is brought up to date first."""
        self._last_signal_id = max(self._last_signal_id, max(t.signal_id for t in tracked))
        by_signal: dict[int, list] = {}
        for row in events_after(after_id=0, signal_ids=[t.signal_id for t in tracked]):
            self._events_seen.add(row.id)
            by_signal.setdefault(row.signal_id, []).append(row.as_tape())
        for item in tracked:
            events = [e for e in by_signal.get(item.signal_id, []) if e[0] > item.last_event_id]
            book = self.book.book(item.symbol)
            if not self.is_live(item.symbol):
                self._backlog(item).extend(events)      # the symbol's catch-up applies them
                self.book.add(item)
                continue
            since = evaluated_ms(item)
            if book.last_ms is not None and since < book.last_ms:
                trades, oldest = self.book.recent_after(item.symbol, since)
                candles = []
                if oldest is None or oldest > since:
                    candles = candles_between(symbol=item.symbol, after_ms=since,
                                              before_ms=oldest if oldest is not None else book.last_ms)
                self.book.replay(item, candles=candles, trades=trades, events=events)
            else:
                self.book.replay(item, events=events)
            self.book.add(item)

    # --- the tape ----------------------------------------------------------------------------

    def _trades(self, trades: list[Trade]) -> None:
        apply = self.book.apply_trade
        held, released, newest = self._held, self._released, self._newest
        # The batch is as the socket delivered it: exchange order is (time, trade id).
        # A trade at or before the newest one applied (a duplicate, or one that came
        # too late to be applied in order) is left out.
        for trade in sorted(trades, key=_exchange_order):
            symbol = trade.symbol
            key = (trade.ts_ms, trade.trade_id)
            previous = newest.get(symbol)
            if previous is not None and key <= previous:
                self.counters["stale_trades"] += 1
                continue
            newest[symbol] = key
            if symbol not in released and symbol not in held:
                held[symbol] = _Hold(since=time.monotonic())
            hold = held.get(symbol)
            if hold is not None:
                hold.trades.append((trade.ts_ms, trade.price))
                continue
            apply(symbol, trade.ts_ms, trade.price)
        self.counters["trades"] += len(trades)

    def _release(self, symbol: str, *, why: str) -> None:
        """End a hold: decide the unstreamed minutes by candles, then the waiting trades."""
        hold = self._held.pop(symbol, None)
        self._released.add(symbol)
        if hold is None:
            return
        book = self.book.book(symbol)
        first_ms = hold.trades[0][0] if hold.trades else int(self.clock() * 1000)
        members = [t for t in self.book.tracked.values() if t.symbol == symbol]
        if members:
            starts = {t.signal_id: max(evaluated_ms(t), book.last_ms or -1) for t in members}
            candles = candles_between(symbol=symbol, after_ms=min(starts.values()), before_ms=first_ms)
            for tracked in members:
                start = starts[tracked.signal_id]
                backlog = self._backlogs.pop(tracked.signal_id, [])
                early = [e for e in backlog if ms_of(e[2]) < first_ms]
                self.book.replay(tracked, candles=[c for c in candles if c.open_ms > start], events=early)
                self.book.rearm(tracked)
                for event in backlog[len(early):]:
                    self.book.apply_event_live(tracked.signal_id, event)
            self.counters["catchups"] += 1
            logger.info("outcomes %s: caught up %d open signals from %d candles (%s)", symbol, len(members),
                        len(candles), why)
        for ts_ms, price in hold.trades:
            self.book.apply_trade(symbol, ts_ms, price)

    def _expire_by_clock(self) -> None:
        now_ms = int((self.clock() - self.expiry_grace) * 1000)
        skip = set(self._held)
        if time.monotonic() - self._loaded_at < self.catchup_wait:
            # Right after start a symbol's first backfill may still be on its way: its
            # candles could show a level reached before the expiry.
            skip |= {s for s in self.book.symbols() if s not in self._released}
        for tracked in self.book.expire_by_clock(now_ms, skip=skip):
            price = close_before(symbol=tracked.symbol, at=tracked.levels.expires_at)
            self.book.expire_at(tracked, price)

    def _persist(self) -> None:
        dirty = self._retry + self.book.take_dirty()
        self._retry = []
        if not dirty:
            return
        batch = []
        for tracked in dirty:
            last_ms = self.book.book(tracked.symbol).last_ms
            batch.append((tracked, at_of(last_ms) if last_ms is not None else None))
        try:
            kept = outcome_progress_save_many(batch)
        except Exception:  # noqa: BLE001 - keep them dirty; the next cycle retries the batch
            self.counters["persist_errors"] += 1
            logger.exception("could not persist %d outcomes; retrying", len(dirty))
            self._retry = dirty
            return
        for tracked, still_open in zip(dirty, kept):
            self.counters["persisted"] += 1
            tracked.persisted_stop = tracked.state.effective_stop
            if tracked.state.status != "open":
                self.counters["decided"] += 1
            if not still_open:
                self.book.forget(tracked.signal_id)
