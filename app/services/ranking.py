"""The ranked queue, kept in priority order incrementally.

`app.domain.priority.rank` sorts every item with a Python key on each call: at 50,000 items that
is hundreds of milliseconds per refresh. Here the order is kept instead: a list of items and a
parallel, sorted list of their sort keys. A changed lead is taken out (`bisect` finds its row)
and put back at its new place; nothing else is touched.

An item's key depends on the time only through its bucket: a promised callback comes forward five
minutes before its time, a follow-up once it is due (`WorkItem.bucket`). Each item that will
change bucket has a "turn" time in a heap; moving the ranking's clock forward re-places only the
items whose turn came. A clock that goes back (tests, a corrected system clock) rebuilds.

Keys are tuples `(bucket, due_at, -score, lead_id)` — distinct per lead, so a key finds its row by
bisection — and a new key object is made whenever an item is placed, so callers (the Qt model)
can tell unchanged rows from changed ones by identity alone.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime
from operator import itemgetter

from app.domain.priority import PROMISED_LEAD_TIME, Bucket, WorkItem, WorkKind

Key = tuple[int, datetime, int, str]
_UPCOMING = int(Bucket.UPCOMING)
_PROMISED = (WorkKind.CALLBACK, WorkKind.APPOINTMENT)
_first = itemgetter(0)


def sort_key(item: WorkItem, now: datetime) -> Key:
    """`WorkItem.sort_key` with a plain int bucket (cheaper to compare)."""
    return (int(item.bucket(now)), item.due_at, -item.score, item.lead_id)


def turns_at(item: WorkItem, key: Key) -> datetime | None:
    """When an item that is "upcoming" becomes due (its bucket changes); None if it never will."""
    if key[0] != _UPCOMING:
        return None
    if item.kind in _PROMISED:
        return item.due_at - PROMISED_LEAD_TIME
    return item.due_at


class Ranking:
    """Work items in priority order as of `now`, changed one lead at a time."""

    def __init__(self) -> None:
        self._items: list[WorkItem] = []
        self._keys: list[Key] = []
        self._key_of: dict[str, Key] = {}
        self._turns: list[tuple[datetime, int, Key]] = []  # heap of (turn, seq, key)
        self._seq = itertools.count()
        self._now: datetime | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._key_of

    @property
    def now(self) -> datetime | None:
        """The time the order is as of (None before anything was ranked)."""
        return self._now

    def item_of(self, lead_id: str) -> WorkItem | None:
        key = self._key_of.get(lead_id)
        return None if key is None else self._items[bisect_left(self._keys, key)]

    def rebuild(self, items: Iterable[WorkItem], now: datetime) -> None:
        """Rank these items from scratch as of `now`."""
        pairs = sorted(((sort_key(item, now), item) for item in items), key=_first)
        self._keys = [key for key, _ in pairs]
        self._items = [item for _, item in pairs]
        self._key_of = {key[3]: key for key in self._keys}
        if len(self._key_of) != len(self._keys):
            raise ValueError("work items must have distinct lead ids")
        turns = []
        for key, item in pairs:
            turn = turns_at(item, key)
            if turn is not None:
                turns.append((turn, next(self._seq), key))
        heapq.heapify(turns)
        self._turns = turns
        self._now = now

    def put(self, lead_id: str, item: WorkItem | None, now: datetime) -> None:
        """The lead's new item (None: no open work, or gone): out of its old row, into its new."""
        if self._now is None:
            self._now = now
        if item is not None and self.item_of(lead_id) == item:
            return  # unchanged (a refresh that changed nothing): the row keeps its key
        self.drop(lead_id)
        if item is not None:
            if item.lead_id != lead_id:
                raise ValueError(f"item of {item.lead_id} put as {lead_id}")
            self._insert(item)

    def advance(self, now: datetime) -> None:
        """Move the ranking's clock to `now`: re-place the items whose bucket changed since."""
        if self._now is None:
            self._now = now
            return
        if now < self._now:
            self.rebuild(list(self._items), now)
            return
        self._now = now
        turns = self._turns
        while turns and turns[0][0] <= now:
            _, _, key = heapq.heappop(turns)
            if self._key_of.get(key[3]) is not key:
                continue  # the lead changed or left since: a stale turn
            row = bisect_left(self._keys, key)
            item = self._items[row]
            del self._keys[row]
            del self._items[row]
            self._insert(item)

    def ranked(self, now: datetime) -> tuple[list[WorkItem], list[Key]]:
        """Copies of the items in priority order as of `now`, and their keys."""
        self.advance(now)
        return list(self._items), list(self._keys)

    def drop(self, lead_id: str) -> None:
        """The lead leaves the ranking (no-op if it was not in it)."""
        key = self._key_of.pop(lead_id, None)
        if key is None:
            return
        row = bisect_left(self._keys, key)
        del self._keys[row]
        del self._items[row]

    def _insert(self, item: WorkItem) -> None:
        assert self._now is not None
        key = sort_key(item, self._now)
        row = bisect_left(self._keys, key)
        self._keys.insert(row, key)
        self._items.insert(row, item)
        self._key_of[item.lead_id] = key
        turn = turns_at(item, key)
        if turn is not None:
            heapq.heappush(self._turns, (turn, next(self._seq), key))
