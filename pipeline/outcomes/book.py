"""The open signals of every symbol, indexed so a trade touches only the signals it
can change (no ORM; the tracker feeds it and persists what it marks dirty).

With thousands of open signals on one symbol, running the engine for every signal on
every trade would make outcome tracking the feed's bottleneck. The engine's
`watch_band` says which prices could change a signal at all (its stop, its next
target, a new extreme for the excursions or a trailing stop); the book keeps two
heaps per symbol keyed on those thresholds, so a trade costs two heap peeks unless
it crosses someone's band, and then only the crossed signals run the engine.
"""
from __future__ import annotations

import datetime as dt
import heapq
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from .engine import (
    OPEN,
    TRAILING,
    Levels,
    OutcomeState,
    apply_candle,
    apply_event,
    apply_expiry,
    apply_extremes,
    apply_trade,
    watch_band,
)
from .extremes import SuffixExtreme, TrailingIndex

UTC = dt.timezone.utc
# Recent trades kept per symbol, replayed to a signal the tracker learns about after
# trades later than its creation were already applied (the poll runs once a batch).
RECENT_TRADES = 20_000


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_MS = dt.timedelta(milliseconds=1)
_US = dt.timedelta(microseconds=1)


def ms_of(at: dt.datetime) -> int:
    """Epoch milliseconds, floored: a trade at ms T is after `at` iff T > ms_of(at)."""
    return (at - _EPOCH) // _MS


def at_of(ms: int) -> dt.datetime:
    return _EPOCH + ms * _MS


@dataclass(slots=True)
class Tracked:
    """One open signal in memory: its published levels and the engine's state."""

    signal_id: int
    symbol: str
    levels: Levels
    state: OutcomeState
    last_event_id: int = 0
    version: int = 0
    trail_indexed: bool = False
    persisted_stop: Decimal | None = None          # the stop last written to the database


def evaluated_ms(tracked: Tracked) -> int:
    """The last instant whose trades this signal has seen (before creation: nothing)."""
    state = tracked.state
    if state.evaluated_until is not None and state.evaluated_until >= tracked.levels.created_at:
        return ms_of(state.evaluated_until)
    # A candle opening exactly at created_at counts, so start one ms before it.
    return ms_of(tracked.levels.created_at) - 1


@dataclass(slots=True)
class Candle1m:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(slots=True)
class _SymbolBook:
    above: list = field(default_factory=list)      # (threshold, version, id): wake at price >= threshold
    below: list = field(default_factory=list)      # (-threshold, version, id): wake at price <= threshold
    expiries: list = field(default_factory=list)   # (expires ms, id)
    eager: set = field(default_factory=set)        # ids any trade acts on (a close is pending)
    last_ms: int | None = None                     # last trade applied to every signal here
    last_price: Decimal | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_TRADES))
    highs: SuffixExtreme = field(default_factory=lambda: SuffixExtreme(highest=True))
    lows: SuffixExtreme = field(default_factory=lambda: SuffixExtreme(highest=False))
    trailing: TrailingIndex = field(default_factory=TrailingIndex)
    pushes: int = 0


class OutcomeBook:
    def __init__(self) -> None:
        self.tracked: dict[int, Tracked] = {}
        self._books: dict[str, _SymbolBook] = {}
        self.dirty: dict[int, Tracked] = {}
        # Expired signals with no price known at all: the tracker prices them from candles.
        self.unpriced: list[Tracked] = []

    def book(self, symbol: str) -> _SymbolBook:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = _SymbolBook()
        return book

    def symbols(self) -> list[str]:
        return sorted({t.symbol for t in self.tracked.values()})

    # --- membership -------------------------------------------------------------------------

    def add(self, tracked: Tracked) -> None:
        """Track an open signal from its current state (already brought up to date)."""
        self.tracked[tracked.signal_id] = tracked
        book = self.book(tracked.symbol)
        if tracked.levels.expires_at is not None:
            heapq.heappush(book.expiries, (ms_of(tracked.levels.expires_at), tracked.signal_id))
        self._arm(tracked, book)

    def rearm(self, tracked: Tracked) -> None:
        """Re-index a tracked signal after its state changed outside the live tape."""
        self._arm(tracked, self.book(tracked.symbol))

    def forget(self, signal_id: int) -> None:
        """Stop tracking a signal (closed elsewhere); its heap entries go stale."""
        tracked = self.tracked.pop(signal_id, None)
        if tracked is not None:
            self.book(tracked.symbol).eager.discard(signal_id)

    def _arm(self, tracked: Tracked, book: _SymbolBook) -> None:
        tracked.version += 1
        book.eager.discard(tracked.signal_id)
        if tracked.state.status != OPEN:
            self.tracked.pop(tracked.signal_id, None)
            return
        if tracked.state.close_after is not None:
            book.eager.add(tracked.signal_id)
            return
        levels = tracked.levels
        low, high = watch_band(levels, tracked.state)
        heapq.heappush(book.above, (high, tracked.version, tracked.signal_id))
        heapq.heappush(book.below, (-low, tracked.version, tracked.signal_id))
        if levels.stop_rule.type == TRAILING and not tracked.trail_indexed:
            book.trailing.add(is_long=levels.is_long, distance_pct=levels.stop_rule.distance_pct,
                              created_ms=ms_of(levels.created_at), signal_id=tracked.signal_id)
            tracked.trail_indexed = True

    def sync(self, tracked: Tracked, book: _SymbolBook | None = None) -> None:
        """Fold the trades skipped since the signal's creation into its state."""
        book = book or self.book(tracked.symbol)
        if tracked.state.status != OPEN:
            return
        created = ms_of(tracked.levels.created_at)
        high, low = book.highs.since(created), book.lows.since(created)
        if high is None:
            return
        favourable, adverse = (high, low) if tracked.levels.is_long else (low, high)
        apply_extremes(tracked.levels, tracked.state, favourable=favourable, adverse=adverse)

    def _touched(self, tracked: Tracked, changed: bool, book: _SymbolBook) -> None:
        if changed:
            self.dirty[tracked.signal_id] = tracked
        self._arm(tracked, book)

    # --- the live tape ------------------------------------------------------------------------

    def apply_trade(self, symbol: str, ts_ms: int, price: Decimal) -> None:
        """One streamed trade, in order for its symbol."""
        book = self._books.get(symbol)
        if book is None:
            book = self.book(symbol)
        if book.expiries and book.expiries[0][0] < ts_ms:
            self._expire_due(book, ts_ms)  # priced by the trade before this one
        woken: set[int] | None = None
        above, below = book.above, book.below
        while above and above[0][0] <= price:
            _, version, sid = heapq.heappop(above)
            tracked = self.tracked.get(sid)
            if tracked is not None and tracked.version == version:
                (woken := woken or set()).add(sid)
        while below and -below[0][0] >= price:
            _, version, sid = heapq.heappop(below)
            tracked = self.tracked.get(sid)
            if tracked is not None and tracked.version == version:
                (woken := woken or set()).add(sid)
        if book.trailing:
            for sid in book.trailing.hits(price, book.highs, book.lows):
                tracked = self.tracked.get(sid)
                if tracked is not None:
                    tracked.trail_indexed = False
                    (woken := woken or set()).add(sid)
        if book.eager:
            woken = (woken or set()) | book.eager
        if woken:
            at = at_of(ts_ms)
            for sid in sorted(woken):
                tracked = self.tracked[sid]
                self.sync(tracked, book)
                self._touched(tracked, apply_trade(tracked.levels, tracked.state, price=price, at=at), book)
        book.last_ms, book.last_price = ts_ms, price
        book.recent.append((ts_ms, price))
        book.highs.push(ts_ms, price)
        book.lows.push(ts_ms, price)
        book.pushes += 1
        if book.pushes % 50_000 == 0:
            self._prune(symbol, book)

    def _prune(self, symbol: str, book: _SymbolBook) -> None:
        # Extremes older than every tracked signal of the symbol are never asked for.
        oldest = min((ms_of(t.levels.created_at) for t in self.tracked.values() if t.symbol == symbol),
                     default=book.last_ms)
        book.highs.prune(oldest)
        book.lows.prune(oldest)

    def _expire_due(self, book: _SymbolBook, now_ms: int) -> None:
        """Expire signals whose expiry is before `now_ms` at the last price before it
        (the symbol's last trade; else the signal's last candle close). Those with no
        price known at all go to `unpriced` (the tracker asks stored candles)."""
        while book.expiries and book.expiries[0][0] < now_ms:
            _, sid = heapq.heappop(book.expiries)
            tracked = self.tracked.get(sid)
            if tracked is None or tracked.state.status != OPEN:
                continue
            price = book.last_price if book.last_price is not None else tracked.state.last_price
            if price is None:
                self.unpriced.append(tracked)
                continue
            self.sync(tracked, book)
            self._touched(tracked, apply_expiry(tracked.levels, tracked.state, price=price), book)

    def expire_by_clock(self, now_ms: int, skip: Iterable[str] = ()) -> list[Tracked]:
        """Expire, on every symbol but `skip`, what expired before `now_ms` with no
        trade since. Returns (and forgets) the expired signals without a known price."""
        skip = set(skip)
        for symbol, book in self._books.items():
            if book.expiries and book.expiries[0][0] < now_ms and symbol not in skip:
                self._expire_due(book, now_ms)
        unpriced, self.unpriced = self.unpriced, []
        return unpriced

    def expire_at(self, tracked: Tracked, price: Decimal | None) -> None:
        self.sync(tracked)
        self._touched(tracked, apply_expiry(tracked.levels, tracked.state, price=price), self.book(tracked.symbol))

    # --- replays for time the book did not see live ------------------------------------------

    def replay(self, tracked: Tracked, *, candles: Iterable[Candle1m] = (), trades: Iterable[tuple[int, Decimal]] = (),
               events: Iterable[tuple[int, str, dt.datetime, Decimal | None]] = ()) -> None:
        """Bring one signal (not yet added) up to date: candles (complete minutes the
        stream missed), then trades, with amendments (id, kind, at, price) interleaved
        in time. Marks it dirty when anything changed."""
        if tracked.signal_id in self.tracked:
            self.sync(tracked)  # the trades it skipped so far
        # Keys in microseconds: an amendment at 12:00:00.500123 comes after a trade at
        # .500 and before one at .501; at the same instant it precedes the tape.
        tape: list[tuple[int, int, object]] = []
        for c in candles:
            tape.append((c.open_ms * 1000, 1, c))
        for ts, price in trades:
            tape.append((ts * 1000, 2, (ts, price)))
        for event in events:
            tape.append(((event[2] - _EPOCH) // _US, 0, event))
        tape.sort(key=lambda item: (item[0], item[1]))
        changed = False
        levels, state = tracked.levels, tracked.state
        for _, kind, item in tape:
            if kind == 1:
                start = at_of(item.open_ms)
                changed |= apply_candle(levels, state, open_time=start, open=item.open, high=item.high,
                                        low=item.low, close=item.close, end=start + dt.timedelta(minutes=1))
            elif kind == 2:
                changed |= apply_trade(levels, state, price=item[1], at=at_of(item[0]))
            else:
                changed |= self._event(tracked, item)
        if changed:
            self.dirty[tracked.signal_id] = tracked

    def _event(self, tracked: Tracked, event: tuple[int, str, dt.datetime, Decimal | None]) -> bool:
        event_id, kind, at, price = event
        if event_id <= tracked.last_event_id:
            return False
        tracked.last_event_id = event_id
        apply_event(tracked.levels, tracked.state, kind=kind, at=at, price=price)
        return True  # the applied event id is progress to persist even if refused

    def apply_event_live(self, signal_id: int, event: tuple[int, str, dt.datetime, Decimal | None]) -> None:
        tracked = self.tracked.get(signal_id)
        if tracked is None:
            return
        book = self.book(tracked.symbol)
        self.sync(tracked, book)
        self._touched(tracked, self._event(tracked, event), book)

    def recent_after(self, symbol: str, after_ms: int) -> tuple[list[tuple[int, Decimal]], int | None]:
        """(remembered trades of `symbol` after `after_ms`, time of the oldest one
        remembered): time before that oldest trade is known only from candles."""
        recent = self.book(symbol).recent
        if not recent:
            return [], None
        return [(ts, p) for ts, p in recent if ts > after_ms], recent[0][0]

    def trailing_moved(self) -> int:
        """Mark dirty every open trailing signal whose stop moved since it was last
        persisted (the moves come from skipped trades, so nothing else marks them).
        Returns how many."""
        moved = 0
        for tracked in self.tracked.values():
            if tracked.levels.stop_rule.type != TRAILING or tracked.state.status != OPEN:
                continue
            self.sync(tracked)
            if tracked.state.effective_stop != tracked.persisted_stop:
                self.dirty[tracked.signal_id] = tracked
                moved += 1
        return moved

    def take_dirty(self) -> list[Tracked]:
        """The signals whose state changed since the last call, with the excursions
        of the trades skipped since folded in (what to persist)."""
        dirty, self.dirty = list(self.dirty.values()), {}
        for tracked in dirty:
            self.sync(tracked)
        return dirty
