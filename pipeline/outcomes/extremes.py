"""Running extremes of a symbol's tape, so skipped trades still count (no ORM).

The book skips every trade that reaches no stop and no target. Two things still
depend on those trades: the excursions (MFE/MAE) and a trailing stop, which follows
the best price since the signal's creation. Waking every signal on every new high
would cost thousands of engine runs per trade when thousands of signals share the
same best price. Instead each symbol keeps its suffix maxima and minima (the
extreme price after any instant, O(log n) to ask, amortized O(1) per trade), and
trailing signals sit in lists ordered by creation time: the signals a trade stops
by their trailing level are exactly those created before the last instant whose
price was far enough above (below) it, a prefix of the list found by bisection.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal

# A trailing level is rounded to 1e-10 like the stored stop; looking this much
# further wakes every signal the engine could find stopped (it decides exactly).
_SLACK = Decimal("1e-10")
_HUNDRED = Decimal(100)


class SuffixExtreme:
    """The highest (or lowest) price among trades after any instant."""

    __slots__ = ("_times", "_keys", "_sign")

    def __init__(self, *, highest: bool):
        self._times: list[int] = []
        self._keys: list[Decimal] = []   # ascending: -price for highest, price for lowest
        self._sign = -1 if highest else 1

    def __len__(self) -> int:
        return len(self._times)

    def push(self, ts_ms: int, price: Decimal) -> None:
        key = price if self._sign == 1 else -price
        times, keys = self._times, self._keys
        while keys and keys[-1] >= key:
            keys.pop()
            times.pop()
        times.append(ts_ms)
        keys.append(key)

    def since(self, after_ms: int) -> Decimal | None:
        """The extreme price of trades with ts > after_ms, or None."""
        index = bisect_right(self._times, after_ms)
        if index == len(self._keys):
            return None
        key = self._keys[index]
        return key if self._sign == 1 else -key

    def latest_reaching(self, level: Decimal) -> int | None:
        """The latest trade time whose price is at or beyond `level` (>= for the
        highest, <= for the lowest), or None."""
        count = bisect_right(self._keys, level if self._sign == 1 else -level)
        return self._times[count - 1] if count else None

    def prune(self, upto_ms: int) -> None:
        """Forget trades at or before upto_ms (no tracked signal is that old)."""
        index = bisect_right(self._times, upto_ms)
        del self._times[:index], self._keys[:index]


class TrailingIndex:
    """Signals with a trailing stop, per side and distance, ordered by creation."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[bool, Decimal], list[tuple[int, int]]] = {}

    def __bool__(self) -> bool:
        return any(self._groups.values())

    def add(self, *, is_long: bool, distance_pct: Decimal, created_ms: int, signal_id: int) -> None:
        group = self._groups.setdefault((is_long, distance_pct), [])
        entry = (created_ms, signal_id)
        if not group or group[-1] <= entry:
            group.append(entry)
        else:
            group.insert(bisect_left(group, entry), entry)

    def hits(self, price: Decimal, highs: SuffixExtreme, lows: SuffixExtreme) -> list[int]:
        """Remove and return the signals whose trailing level, set by the extreme since
        their creation (trades before this one), this trade's price may reach."""
        woken: list[int] = []
        for (is_long, distance), group in self._groups.items():
            if not group:
                continue
            factor = distance / _HUNDRED
            if is_long:   # stop = best * (1 - f) >= price  <=>  best >= price / (1 - f)
                instant = highs.latest_reaching((price - _SLACK) / (1 - factor))
            else:         # stop = best * (1 + f) <= price  <=>  best <= price / (1 + f)
                instant = lows.latest_reaching((price + _SLACK) / (1 + factor))
            if instant is None:
                continue
            count = bisect_left(group, (instant,))   # created strictly before that trade
            if count:
                woken.extend(sid for _, sid in group[:count])
                del group[:count]
        return woken
