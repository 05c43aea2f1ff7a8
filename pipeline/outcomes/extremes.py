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

    __slots__ = ("_groups", "_count")

    def __init__(self) -> None:
        # (is_long, distance) -> [scale, [(created ms, signal id), ...], extreme, trigger]
        self._groups: dict[tuple[bool, Decimal], list] = {}
        self._count = 0

    def __bool__(self) -> bool:
        return self._count > 0

    def add(self, *, is_long: bool, distance_pct: Decimal, created_ms: int, signal_id: int) -> None:
        key = (is_long, distance_pct)
        if key not in self._groups:
            factor = distance_pct / _HUNDRED
            # [1 / (1 -+ f), entries by creation, cached extreme since the oldest, its trigger price]
            self._groups[key] = [1 / (1 - factor) if is_long else 1 / (1 + factor), [], None, None]
        group = self._groups[key]
        entries = group[1]
        entry = (created_ms, signal_id)
        if not entries or entries[-1] <= entry:
            entries.append(entry)
        else:
            entries.insert(bisect_left(entries, entry), entry)
        if entries[0] == entry:
            group[2] = None   # a new oldest member: its extreme differs
        self._count += 1

    def hits(self, price: Decimal, highs: SuffixExtreme, lows: SuffixExtreme) -> list[int]:
        """Remove and return the signals whose trailing level, set by the extreme since
        their creation (trades before this one), this trade's price may reach."""
        woken: list[int] = []
        for (is_long, _), group in self._groups.items():
            scale, entries, extreme, trigger = group
            if not entries:
                continue
            if extreme is None:
                # The oldest member has the most extreme best price, so the highest
                # (lowest) trailing level: while it is not reached, none is.
                extreme = (highs if is_long else lows).since(entries[0][0])
                if extreme is None:
                    continue
                trigger = extreme / scale + _SLACK if is_long else extreme / scale - _SLACK
                group[2], group[3] = extreme, trigger
            if (price > trigger) if is_long else (price < trigger):
                if (price > extreme) if is_long else (price < extreme):
                    group[2] = None   # this trade becomes the new extreme
                continue
            if is_long:   # stop = best * (1 - f) >= price  <=>  best >= price / (1 - f)
                instant = highs.latest_reaching((price - _SLACK) * scale)
            else:         # stop = best * (1 + f) <= price  <=>  best <= price / (1 + f)
                instant = lows.latest_reaching((price + _SLACK) * scale)
            if instant is None:
                continue
            count = bisect_left(entries, (instant,))   # created strictly before that trade
            if count:
                woken.extend(sid for _, sid in entries[:count])
                del entries[:count]
                self._count -= count
                group[2] = None
        return woken
