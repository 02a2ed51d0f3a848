"""The work queue as a Qt table model.

Rows are kept in priority order by the caller (no proxy sort: 7.8 s at 50k rows, see NOTES.md). The
countdown text is computed at paint time from the row's deadline, so a tick is one `dataChanged`
over the countdown column. Updates are incremental — removals, one layout change for a reorder,
insertions — never a model reset; only a new search (a different set of rows) resets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.priority import WorkItem, WorkKind, countdown_text, why_first
from ui.theme import Colors, current_colors

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
        self._flash_until: dict[str, float] = {}
        self._moved_until: dict[str, float] = {}
        self._phase = False
        self._bold = QFont()
        self._bold.setBold(True)
        self._countdown_font = QFont()
        self._countdown_font.setBold(True)
        self._countdown_font.setPointSizeF(self._countdown_font.pointSizeF() * 1.5)

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
        if not index.isValid() or index.row() >= len(self._items):
            return None
        item = self._items[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, column)
        if role == ItemRole:
            return item
        if role == SecondsLeftRole:
            return (item.due_at - self._clock()).total_seconds()
        if role == MarkRole:
            return self.mark(item.lead_id)
        if role == Qt.ItemDataRole.ToolTipRole:
            return why_first(item, self._clock())
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == COL_DUE:
                return QBrush(QColor(self._due_color(item)))
            if column == COL_TIER and item.tier in ("hot", "high", "medium"):
                color = {"hot": self._colors.red, "high": self._colors.orange}
                return QBrush(QColor(color.get(item.tier, self._colors.blue)))
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            mark = self.mark(item.lead_id)
            if mark == "new" and (column != COL_DUE or self._phase):
                return QBrush(QColor(self._colors.flash))
            if mark == "moved_up":
                return QBrush(QColor(self._colors.moved))
            return None
        if role == Qt.ItemDataRole.FontRole:
            if column == COL_DUE:
                return self._countdown_font
            if column in (COL_NAME, COL_TIER):
                return self._bold
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == COL_DUE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._display(item, column)
        return None

    def _display(self, item: WorkItem, column: int) -> str:
        if column == COL_DUE:
            text = countdown_text(item.due_at, self._clock())
            # Breached rows say so in words too, not only in red.
            return f"⚠ {text}" if text.startswith("+") else text
        if column == COL_NAME:
            mark = self.mark(item.lead_id)
            prefix = "★ NEW  " if mark == "new" else "▲ " if mark == "moved_up" else ""
            return f"{prefix}{item.name}"
        if column == COL_VEHICLE:
            return item.vehicle
        if column == COL_SOURCE:
            return item.source
        if column == COL_TIER:
            return f"{item.tier.upper()} · {item.grade}"
        if column == COL_ACTION:
            return f"{_KIND_LABEL[item.kind]}: {item.action}"
        return ""

    def _due_color(self, item: WorkItem) -> str:
        left = item.due_at - self._clock()
        if left < timedelta(0):
            return self._colors.red
        if left <= DUE_SOON:
            return self._colors.orange
        return self._colors.green

    # Marks: flashing new rows and rows that moved up

    def mark(self, lead_id: str) -> str:
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
        for row, item in enumerate(self._items):
            if item.lead_id == lead_id:
                return row
        return -1

    def lead_ids(self) -> list[str]:
        return [item.lead_id for item in self._items]

    # Updates from the owner of the data

    def set_items(self, items: Sequence[WorkItem]) -> None:
        """A different set of rows (first load, a new search): reset, no flashes."""
        self.beginResetModel()
        self._items = list(items)
        self._flash_until.clear()
        self._moved_until.clear()
        self.endResetModel()

    def update_items(self, items: Sequence[WorkItem], *, announce: bool = True) -> None:
        """Bring the rows to `items` (priority order) with removals, one reorder and insertions.

        Rows that moved up are marked for a few seconds; new rows of alert kinds flash and are
        announced through `item_arrived` (when `announce`).
        """
        wanted = list(items)
        wanted_ids = {item.lead_id for item in wanted}
        if len(wanted_ids) != len(wanted):
            raise ValueError("work items must have distinct lead ids")
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
            for lead_id in _moved_up([old_rows[i.lead_id] for i in survivors], survivors):
                self._moved_until[lead_id] = now + MOVED_MARK_SECONDS
            new_rows = {item.lead_id: row for row, item in enumerate(survivors)}
            old_items = self._items
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            self._items = survivors
            self.changePersistentIndexList(
                persistent,
                [self.index(new_rows[old_items[p.row()].lead_id], p.column()) for p in persistent],
            )
            self.layoutChanged.emit()
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
                self.item_arrived.emit(item)

    def _emit_rows(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(HEADERS) - 1))

    def tick(self) -> None:
        """Repaint the countdowns: one dataChanged over the countdown column.

        Marks that just expired repaint their rows once (rare, and only those rows).
        """
        self._phase = not self._phase
        now = self._monotonic()
        for marks in (self._flash_until, self._moved_until):
            expired = [lead_id for lead_id, until in marks.items() if until <= now]
            for lead_id in expired:
                del marks[lead_id]
                row = self.row_of(lead_id)
                if row >= 0:
                    self._emit_rows(row, row)
        if self._items:
            top = self.index(0, COL_DUE)
            bottom = self.index(len(self._items) - 1, COL_DUE)
            self.dataChanged.emit(top, bottom, [Qt.ItemDataRole.DisplayRole])
