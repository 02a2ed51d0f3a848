"""The work queue as a Qt table model.

Rows are kept in priority order by the caller (no proxy sort: 7.8 s at 50k rows, see NOTES.md). The
countdown text is computed at paint time from the row's deadline, so a tick is one `dataChanged`
over the countdown column. Updates are incremental — removals, one layout change for a reorder,
insertions — never a model reset; only a new search (a different set of rows) resets.

With the rows' sort keys (`app.services.ranking`: sorted, distinct, and a new key object exactly
when an item was re-placed) an update costs O(changes · log n): the changed rows are found by
key identity (set operations in C), each is moved with `beginMoveRows` to the row `bisect` finds,
and only those rows are marked "moved up". Without keys the general diff below runs (one
`layoutChanged`), which is O(n log n) in Python.

`data()` is called ~1,000 times per repaint of the visible rows, so it allocates nothing it can
avoid: brushes, fonts and alignments are made once and handed out.
"""

from __future__ import annotations

import functools
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import compress
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.priority import (
    PROMISED_LEAD_TIME,
    WorkItem,
    WorkKind,
    countdown_text,
    why_first,
)
from app.services.ranking import sort_key, turns_at
from ui.signals import emit
from ui.theme import Colors, current_colors

log = logging.getLogger(__name__)

COL_DUE = 0
COL_NAME = 1
COL_VEHICLE = 2
COL_SOURCE = 3
COL_TIER = 4
COL_ACTION = 5
HEADERS = ("Due", "Customer", "Vehicle", "Source", "Tier · grade", "Next step")

# Custom roles: the object itself (for the workspace) and a sort value (seconds left).
ItemRole = Qt.ItemDataRole.UserRole + 1
SecondsLeftRole = Qt.ItemDataRole.UserRole + 2
MarkRole = Qt.ItemDataRole.UserRole + 3  # "new", "moved_up" or ""

DUE_SOON = timedelta(minutes=2)
FLASH_SECONDS = 8.0
MOVED_MARK_SECONDS = 10.0
_KIND_LABEL = {
    WorkKind.CUSTOMER_REPLY: "Reply",
    WorkKind.NEW_LEAD: "New",
    WorkKind.CALLBACK: "Callback",
    WorkKind.APPOINTMENT: "Appt",
    WorkKind.FOLLOW_UP: "Follow-up",
}
_ALERT_KINDS = (WorkKind.NEW_LEAD, WorkKind.CUSTOMER_REPLY)

Index = QModelIndex | QPersistentModelIndex
Key = tuple[Any, ...]  # app.services.ranking.Key: (bucket, due_at, -score, lead_id)
_UPCOMING = 4  # app.domain.priority.Bucket.UPCOMING
# Beyond this many changed rows one layoutChanged is cheaper than moving rows one by one.
MAX_MOVES = 2_000

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_ITEM = int(ItemRole)
_SECONDS = int(SecondsLeftRole)
_MARK = int(MarkRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


@functools.lru_cache(maxsize=64)
def _brush(color: str) -> QBrush:
    """One brush per colour, made once (data() hands out the same object every paint)."""
    return QBrush(QColor(color))


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted rows as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


def _moved_up(old_rows: list[int], items: Sequence[WorkItem]) -> list[str]:
    """Lead ids that overtook others: not in the longest run that kept its relative order, and
    now higher than before. (One lead dropping down marks nobody; one jumping up marks it.)"""
    tails: list[int] = []  # index into old_rows of the smallest tail of each run length
    parent = [-1] * len(old_rows)
    for position, value in enumerate(old_rows):
        low, high = 0, len(tails)
        while low < high:
            middle = (low + high) // 2
            if old_rows[tails[middle]] < value:
                low = middle + 1
            else:
                high = middle
        parent[position] = tails[low - 1] if low else -1
        if low == len(tails):
            tails.append(position)
        else:
            tails[low] = position
    kept: set[int] = set()
    position = tails[-1] if tails else -1
    while position >= 0:
        kept.add(position)
        position = parent[position]
    return [
        items[position].lead_id
        for position, old in enumerate(old_rows)
        if position not in kept and position < old
    ]


class QueueModel(QAbstractTableModel):
    # A work item that just entered the queue and wants the agent's attention (new lead, reply).
    item_arrived = Signal(object)

    def __init__(
        self,
        clock: Callable[[], datetime],
        parent: Any = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        colors: Colors | None = None,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._monotonic = monotonic
        self._colors = colors or current_colors()
        self._items: list[WorkItem] = []
        # The rows' sort keys (parallel to _items, sorted) when the owner gave them; None if not.
        self._keys: list[Key] | None = None
        self._key_of: dict[str, Key] = {}
        self._rows: dict[str, int] | None = None  # lead id → row without keys, built on demand
        # The time the keys are as of (the `now` they were ranked at), when the owner said.
        self._as_of: datetime | None = None
        self._flash_until: dict[str, float] = {}
        self._moved_until: dict[str, float] = {}
        self._phase = False
        self._bold = QFont()
        self._bold.setBold(True)
        self._countdown_font = QFont()
        self._countdown_font.setBold(True)
        self._countdown_font.setPointSizeF(self._countdown_font.pointSizeF() * 1.5)
        colors_ = self._colors
        self._tier_brush = {
            "hot": _brush(colors_.red),
            "high": _brush(colors_.orange),
            "medium": _brush(colors_.blue),
        }
        self._red, self._orange, self._green = (
            _brush(colors_.red),
            _brush(colors_.orange),
            _brush(colors_.green),
        )
        self._flash_brush = _brush(colors_.flash)
        self._moved_brush = _brush(colors_.moved)
        self._column_font: tuple[QFont | None, ...] = tuple(
            self._countdown_font
            if column == COL_DUE
            else self._bold
            if column in (COL_NAME, COL_TIER)
            else None
            for column in range(len(HEADERS))
        )
        self._roles: dict[int, Callable[[WorkItem, int], Any]] = {
            _DISPLAY: self._display,
            _FOREGROUND: self._foreground,
            _BACKGROUND: self._background,
            _FONT: self._font,
            _ALIGNMENT: self._alignment,
            _ITEM: lambda item, _column: item,
            _SECONDS: lambda item, _column: (item.due_at - self._clock()).total_seconds(),
            _MARK: lambda item, _column: self.mark(item.lead_id),
            _TOOLTIP: lambda item, _column: why_first(item, self._clock()),
            _ACCESSIBLE: self._display,
        }

    # Qt model interface

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Hot path: one dict lookup for the roles that have nothing to say (decoration,
        # check state, size hint…), no allocation for the others.
        answer = self._roles.get(role)
        if answer is None:
            return None
        row = index.row()
        if row < 0 or row >= len(self._items) or not index.isValid():
            return None
        return answer(self._items[row], index.column())

    def _font(self, _item: WorkItem, column: int) -> QFont | None:
        return self._column_font[column] if 0 <= column < len(HEADERS) else None

    def _alignment(self, _item: WorkItem, column: int) -> int | None:
        return _RIGHT if column == COL_DUE else None

    def _foreground(self, item: WorkItem, column: int) -> QBrush | None:
        if column == COL_DUE:
            left = item.due_at - self._clock()
            if left < timedelta(0):
                return self._red
            return self._orange if left <= DUE_SOON else self._green
        if column == COL_TIER:
            return self._tier_brush.get(item.tier)
        return None

    def _background(self, item: WorkItem, column: int) -> QBrush | None:
        if not self._flash_until and not self._moved_until:
            return None
        mark = self.mark(item.lead_id)
        if mark == "new" and (column != COL_DUE or self._phase):
            return self._flash_brush
        if mark == "moved_up":
            return self._moved_brush
        return None

    def _display(self, item: WorkItem, column: int) -> str:
        if column == COL_DUE:
            text = countdown_text(item.due_at, self._clock())
            # Breached rows say so in words too, not only in red.
            return f"⚠ {text}" if text.startswith("+") else text
        if column == COL_NAME:
            mark = self.mark(item.lead_id)
            prefix = "★ NEW  " if mark == "new" else "▲ " if mark == "moved_up" else ""
            return f"{prefix}{item.name}" if prefix else item.name
        if column == COL_VEHICLE:
            return item.vehicle
        if column == COL_SOURCE:
            return item.source
        if column == COL_TIER:
            return f"{item.tier.upper()} · {item.grade}"
        if column == COL_ACTION:
            return f"{_KIND_LABEL[item.kind]}: {item.action}"
        return ""

    # Marks: flashing new rows and rows that moved up

    def mark(self, lead_id: str) -> str:
        if not self._flash_until and not self._moved_until:
            return ""
        now = self._monotonic()
        if self._flash_until.get(lead_id, 0.0) > now:
            return "new"
        if self._moved_until.get(lead_id, 0.0) > now:
            return "moved_up"
        return ""

    def is_flashing(self, lead_id: str) -> bool:
        return self.mark(lead_id) == "new"

    # Reads

    def item_at(self, row: int) -> WorkItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def row_of(self, lead_id: str) -> int:
        if self._keys is not None:
            key = self._key_of.get(lead_id)
            return -1 if key is None else bisect_left(self._keys, key)
        if self._rows is None:
            self._rows = {item.lead_id: row for row, item in enumerate(self._items)}
        return self._rows.get(lead_id, -1)

    def lead_ids(self) -> list[str]:
        return [item.lead_id for item in self._items]

    def overdue_count(self, now: datetime) -> int:
        """Rows past their deadline among those due now (above the "upcoming" ones)."""
        keys = self._keys
        if keys is not None:
            return sum(
                bisect_left(keys, (bucket, now)) - bisect_left(keys, (bucket,))
                for bucket in range(_UPCOMING)
            )
        overdue = 0
        for item in self._items:
            if item.bucket(now) >= _UPCOMING:
                break
            overdue += item.due_at < now
        return overdue

    # Updates from the owner of the data

    def set_items(
        self,
        items: Sequence[WorkItem],
        keys: Sequence[Key] | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        """A different set of rows (first load, a new search): reset, no flashes. `now`: the
        time `keys` were ranked at (what `update_leads` needs)."""
        self.beginResetModel()
        self._items = list(items)
        self._adopt_keys(keys)
        self._as_of = now if keys is not None else None
        self._flash_until.clear()
        self._moved_until.clear()
        self.endResetModel()

    def _adopt_keys(self, keys: Sequence[Key] | None) -> None:
        self._rows = None
        if keys is None:
            self._keys, self._key_of = None, {}
            return
        if len(keys) != len(self._items):
            raise ValueError("one key per work item")
        self._keys = list(keys)
        self._key_of = {key[3]: key for key in self._keys}

    def update_items(
        self,
        items: Sequence[WorkItem],
        keys: Sequence[Key] | None = None,
        *,
        announce: bool = True,
        reorder: bool = True,
        marks: bool = True,
        now: datetime | None = None,
    ) -> bool:
        """Bring the rows to `items` (priority order) with removals, moves and insertions.

        `keys`: the items' sort keys (see the module doc) — the incremental path; `now`: the
        time they were ranked at. Rows that moved up are marked for a few seconds (unless
        `marks=False`); new rows of alert kinds flash and are announced through `item_arrived`
        (when `announce`). `reorder=False` applies the update only if the order of the rows
        stays as it is (changed data in place); returns whether it was applied.
        """
        if keys is not None and self._keys is not None:
            plan = self._plan(items, keys)
            if plan is not None:
                removed, moved, inserted = plan
                if not reorder and (removed or inserted or not self._in_place(moved, keys)):
                    return False
                self._apply(items, keys, removed, moved, inserted, announce=announce, marks=marks)
                self._as_of = now
                return True
        if not reorder and [i.lead_id for i in items] != self.lead_ids():
            return False
        self._update_all(items, announce=announce, marks=marks)
        self._adopt_keys(keys)
        self._as_of = now if keys is not None else None
        return True

    def update_leads(
        self,
        lead_ids: Iterable[str],
        items: Sequence[WorkItem],
        keys: Sequence[Key],
        now: datetime,
        item_of: Callable[[str], WorkItem | None],
        *,
        announce: bool = True,
        reorder: bool = True,
        marks: bool = True,
    ) -> bool | None:
        """`update_items` told which leads changed: O(changes · log n), no diff over every row.

        `lead_ids`: every lead re-derived, added or removed since the last update (what
        `QueueService.on_changed` listeners are told); `items`/`keys`: the ranking as of `now`
        (`WorkQueue.ranked`); `item_of(lead_id)`: the lead's open item now, None if none
        (`WorkQueue.item_for`). Rows whose bucket turned since the last update (a callback
        coming forward, a follow-up falling due: `app.services.ranking.turns_at`) are found
        here from their keys, as the ranking re-places them. Each lead's row is found by
        `bisect` of its new key in `keys`. Returns whether it was applied, as `update_items`;
        None when this path cannot tell (no keys with their time yet, the clock went back, too
        many changes): then call `update_items`.
        """
        old_keys = self._keys
        as_of = self._as_of
        if old_keys is None or as_of is None or now < as_of:
            return None
        if len(keys) != len(items):
            raise ValueError("one key per work item")
        candidates = dict.fromkeys(lead_ids)
        candidates.update(dict.fromkeys(self._turned(now)))
        if len(candidates) > MAX_MOVES:
            return None
        key_of = self._key_of
        size = len(keys)
        removed: list[Key] = []
        moved: list[tuple[Key, Key, WorkItem]] = []
        inserted: list[int] = []
        for lead_id in candidates:
            old = key_of.get(lead_id)
            new: Key | None = None
            row = -1
            item = item_of(lead_id)
            if item is not None:
                wanted = sort_key(item, now)
                row = bisect_left(keys, wanted)
                if row < size and keys[row] == wanted:
                    new = keys[row]  # not there: filtered out by a search
            if new is old:
                continue  # unchanged, or neither shown before nor now
            if new is None:
                assert old is not None
                removed.append(old)
            elif old is None:
                inserted.append(row)
            else:
                moved.append((old, new, items[row]))
        inserted.sort()
        if not reorder and (removed or inserted or not self._in_place(moved, keys)):
            return False
        self._apply(items, keys, removed, moved, inserted, announce=announce, marks=marks)
        self._as_of = now
        if not self._agrees(keys, moved, inserted):
            # Something changed that nobody named: show the ranking as it is (never a wrong row).
            log.warning("queue rows out of step with the ranking: updating every row")
            self._update_all(items, announce=False, marks=False)
            self._adopt_keys(keys)
        return True

    def _turned(self, now: datetime) -> list[str]:
        """Leads of "upcoming" rows whose turn (`turns_at`) came by `now`: the ranking moves
        them into their due bucket. They are the first upcoming rows (by due time)."""
        keys, items = self._keys, self._items
        assert keys is not None
        limit = now + PROMISED_LEAD_TIME  # no turn is earlier than due_at - this
        turned = []
        first = bisect_left(keys, (_UPCOMING,))  # UPCOMING is the last bucket
        for row in range(first, len(keys)):
            key = keys[row]
            if key[1] > limit:
                break
            turn = turns_at(items[row], key)  # type: ignore[arg-type]
            if turn is not None and turn <= now:
                turned.append(key[3])
        return turned

    def _agrees(
        self, keys: Sequence[Key], moved: list[tuple[Key, Key, WorkItem]], inserted: list[int]
    ) -> bool:
        """The rows just placed are where the ranking has them, and the counts match."""
        mine = self._keys
        assert mine is not None
        if len(mine) != len(keys):
            return False
        if any(mine[row] is not keys[row] for row in inserted):
            return False
        return all(mine[bisect_left(mine, new)] is new for _old, new, _item in moved)

    # -- the incremental path

    def _plan(
        self, items: Sequence[WorkItem], keys: Sequence[Key]
    ) -> tuple[list[Key], list[tuple[Key, Key, WorkItem]], list[int]] | None:
        """(keys of rows leaving, (old key, new key, item) of rows changed, new rows of arrivals);
        None when so much changed that the general path is cheaper."""
        if len(keys) != len(items):
            raise ValueError("one key per work item")
        old_keys = self._keys
        assert old_keys is not None
        old_ids = set(map(id, old_keys))
        new_ids = set(map(id, keys))
        if old_ids == new_ids:
            return [], [], []
        gone_ids = old_ids - new_ids
        came_ids = new_ids - old_ids
        if len(gone_ids) + len(came_ids) > MAX_MOVES:
            return None
        gone = list(compress(old_keys, map(gone_ids.__contains__, map(id, old_keys))))
        came_rows = list(compress(range(len(keys)), map(came_ids.__contains__, map(id, keys))))
        gone_by_lead = {key[3]: key for key in gone}
        came_leads = {keys[row][3] for row in came_rows}
        removed = [key for key in gone if key[3] not in came_leads]
        moved: list[tuple[Key, Key, WorkItem]] = []
        inserted: list[int] = []
        for row in came_rows:
            key = keys[row]
            old = gone_by_lead.get(key[3])
            if old is None:
                inserted.append(row)
            else:
                moved.append((old, key, items[row]))
        return removed, moved, inserted

    def _in_place(self, moved: list[tuple[Key, Key, WorkItem]], keys: Sequence[Key]) -> bool:
        """Every changed row stays where it is (nothing arrives or leaves)."""
        old_keys = self._keys
        assert old_keys is not None
        return all(
            bisect_left(old_keys, old) == bisect_left(keys, new) for old, new, _item in moved
        )

    def _apply(
        self,
        items: Sequence[WorkItem],
        new_keys: Sequence[Key],
        removed: list[Key],
        moved: list[tuple[Key, Key, WorkItem]],
        inserted: list[int],
        *,
        announce: bool,
        marks: bool,
    ) -> None:
        keys = self._keys
        assert keys is not None
        root = QModelIndex()
        # 1. rows leaving, bottom up
        for row in sorted((bisect_left(keys, key) for key in removed), reverse=True):
            self.beginRemoveRows(root, row, row)
            del keys[row]
            del self._items[row]
            self.endRemoveRows()
        for key in removed:
            self._key_of.pop(key[3], None)
        # 2. changed rows: out of the old row, into the one bisect finds (a single move each)
        now = self._monotonic()
        for old, new, item in moved:
            source = bisect_left(keys, old)
            target = bisect_left(keys, new)  # Qt's destination: the row it goes before
            if target in (source, source + 1):
                keys[source] = new
                self._items[source] = item
                self._key_of[new[3]] = new
                self._emit_rows(source, source)
                continue
            self.beginMoveRows(root, source, source, root, target)
            del keys[source]
            del self._items[source]
            final = target if target < source else target - 1
            keys.insert(final, new)
            self._items.insert(final, item)
            self._key_of[new[3]] = new
            self.endMoveRows()
            if marks and final < source:
                self._moved_until[new[3]] = now + MOVED_MARK_SECONDS
            self._emit_rows(final, final)
        # 3. arrivals at their final rows, top down, in runs
        for first, last in _runs(inserted):
            self.beginInsertRows(root, first, last)
            keys[first:first] = new_keys[first : last + 1]
            self._items[first:first] = items[first : last + 1]
            for key in new_keys[first : last + 1]:
                self._key_of[key[3]] = key
            self.endInsertRows()
        for row in inserted:
            item = items[row]
            if announce and item.kind in _ALERT_KINDS:
                self._flash_until[item.lead_id] = now + FLASH_SECONDS
                self._emit_rows(row, row)
                emit(self.item_arrived, item)

    # -- the general path

    def _update_all(self, items: Sequence[WorkItem], *, announce: bool, marks: bool) -> None:
        wanted = list(items)
        wanted_ids = {item.lead_id for item in wanted}
        if len(wanted_ids) != len(wanted):
            raise ValueError("work items must have distinct lead ids")
        self._rows = None
        # 1. removals, bottom up, in runs
        gone = [row for row, item in enumerate(self._items) if item.lead_id not in wanted_ids]
        for first, last in reversed(_runs(gone)):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._items[first : last + 1]
            self.endRemoveRows()
        # 2. survivors: new order and new data
        present = {item.lead_id for item in self._items}
        survivors = [item for item in wanted if item.lead_id in present]
        old_rows = {item.lead_id: row for row, item in enumerate(self._items)}
        now = self._monotonic()
        if [i.lead_id for i in survivors] != [i.lead_id for i in self._items]:
            if marks:
                for lead_id in _moved_up([old_rows[i.lead_id] for i in survivors], survivors):
                    self._moved_until[lead_id] = now + MOVED_MARK_SECONDS
            new_rows = {item.lead_id: row for row, item in enumerate(survivors)}
            old_items = self._items
            emit(self.layoutAboutToBeChanged)
            persistent = self.persistentIndexList()
            self._items = survivors
            self.changePersistentIndexList(
                persistent,
                [self.index(new_rows[old_items[p.row()].lead_id], p.column()) for p in persistent],
            )
            emit(self.layoutChanged)
            if survivors:
                self._emit_rows(0, len(survivors) - 1)
        else:
            changed = [row for row, item in enumerate(survivors) if item != self._items[row]]
            self._items = survivors
            if changed:
                self._emit_rows(changed[0], changed[-1])
        # 3. insertions at their target rows, top down, in runs
        fresh = [row for row, item in enumerate(wanted) if item.lead_id not in present]
        for first, last in _runs(fresh):
            self.beginInsertRows(QModelIndex(), first, last)
            self._items[first:first] = wanted[first : last + 1]
            self.endInsertRows()
        for row in fresh:
            item = wanted[row]
            if announce and item.kind in _ALERT_KINDS:
                self._flash_until[item.lead_id] = now + FLASH_SECONDS
                self._emit_rows(row, row)
                emit(self.item_arrived, item)

    def _emit_rows(self, first: int, last: int) -> None:
        emit(self.dataChanged, self.index(first, 0), self.index(last, len(HEADERS) - 1))

    def tick(self) -> None:
        """Repaint the countdowns: one dataChanged over the countdown column.

        Marks that just expired repaint their rows once (rare, and only those rows).
        """
        self._phase = not self._phase
        now = self._monotonic()
        for marks in (self._flash_until, self._moved_until):
            if not marks:
                continue
            expired = [lead_id for lead_id, until in marks.items() if until <= now]
            for lead_id in expired:
                del marks[lead_id]
                row = self.row_of(lead_id)
                if row >= 0:
                    self._emit_rows(row, row)
        if self._items:
            top = self.index(0, COL_DUE)
            bottom = self.index(len(self._items) - 1, COL_DUE)
            emit(self.dataChanged, top, bottom, [Qt.ItemDataRole.DisplayRole])
