"""The work queue as a Qt table model.

Rows are kept in priority order by the caller (no proxy sort: 7.8 s at 50k rows, see NOTES.md). The
countdown text is computed at paint time from the row's deadline, so a tick is one `dataChanged`
over the countdown column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.priority import WorkItem, WorkKind, countdown_text, why_first

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

DUE_SOON = timedelta(minutes=2)
_BREACHED = QColor("#c62828")
_SOON = QColor("#ef6c00")
_ON_TRACK = QColor("#2e7d32")
_TIER_COLOR = {"hot": QColor("#c62828"), "high": QColor("#ef6c00"), "medium": QColor("#1565c0")}
_KIND_LABEL = {
    WorkKind.CUSTOMER_REPLY: "Reply",
    WorkKind.NEW_LEAD: "New",
    WorkKind.CALLBACK: "Callback",
    WorkKind.APPOINTMENT: "Appt",
    WorkKind.FOLLOW_UP: "Follow-up",
}

Index = QModelIndex | QPersistentModelIndex


class QueueModel(QAbstractTableModel):
    def __init__(self, clock: Callable[[], datetime], parent: Any = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._items: list[WorkItem] = []
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
        if role == Qt.ItemDataRole.ToolTipRole:
            return why_first(item, self._clock())
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == COL_DUE:
                return QBrush(self._due_color(item))
            if column == COL_TIER and item.tier in _TIER_COLOR:
                return QBrush(_TIER_COLOR[item.tier])
        if role == Qt.ItemDataRole.FontRole:
            if column == COL_DUE:
                return self._countdown_font
            if column in (COL_NAME, COL_TIER):
                return self._bold
        if role == Qt.ItemDataRole.TextAlignmentRole and column == COL_DUE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, item: WorkItem, column: int) -> str:
        if column == COL_DUE:
            return countdown_text(item.due_at, self._clock())
        if column == COL_NAME:
            return item.name
        if column == COL_VEHICLE:
            return item.vehicle
        if column == COL_SOURCE:
            return item.source
        if column == COL_TIER:
            return f"{item.tier.upper()} · {item.grade}"
        if column == COL_ACTION:
            return f"{_KIND_LABEL[item.kind]}: {item.action}"
        return ""

    def _due_color(self, item: WorkItem) -> QColor:
        left = item.due_at - self._clock()
        if left < timedelta(0):
            return _BREACHED
        if left <= DUE_SOON:
            return _SOON
        return _ON_TRACK

    # Updates from the owner of the data

    def set_items(self, items: Sequence[WorkItem]) -> None:
        """Replace the rows (already in priority order). Used at load and when the order changes."""
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def item_at(self, row: int) -> WorkItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def tick(self) -> None:
        """Repaint the countdowns: one dataChanged over the countdown column."""
        if self._items:
            top = self.index(0, COL_DUE)
            bottom = self.index(len(self._items) - 1, COL_DUE)
            self.dataChanged.emit(top, bottom, [Qt.ItemDataRole.DisplayRole])
