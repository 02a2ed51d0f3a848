"""The agent's main window: the work queue on the left, the lead workspace on the right."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.domain.priority import WorkItem
from app.services.workqueue import WorkQueue
from ui.queue_model import COL_DUE, COL_NAME, COL_SOURCE, COL_TIER, COL_VEHICLE, QueueModel
from ui.workspace import render_lead_html

RERANK_EVERY_TICKS = 5  # re-rank a few seconds apart, so rows don't jump under the mouse


class MainWindow(QMainWindow):
    def __init__(
        self,
        queue: WorkQueue,
        clock: Callable[[], datetime],
        *,
        title: str,
        status_text: str,
    ) -> None:
        super().__init__()
        self._queue = queue
        self._clock = clock
        self._ticks = 0
        self.setWindowTitle(title)

        self.model = QueueModel(clock, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(34)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {COL_DUE: 140, COL_NAME: 170, COL_VEHICLE: 230, COL_SOURCE: 120, COL_TIER: 120}
        for column, width in widths.items():
            self.table.setColumnWidth(column, width)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, phone or vehicle  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._reload)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.search.setFocus)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 0, 6)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.table)

        self.workspace = QTextBrowser()
        self.workspace.setOpenLinks(False)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.workspace)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.setCentralWidget(splitter)

        self.connection_label = QLabel(status_text)
        self.counts_label = QLabel()
        self.statusBar().addWidget(self.connection_label, 1)
        self.statusBar().addPermanentWidget(self.counts_label)

        self.table.selectionModel().currentRowChanged.connect(self._show_current)

        # The one refresh timer: repaints countdowns every second, re-ranks every few seconds.
        self.countdown_timer = QTimer(self)
        self.countdown_timer.setObjectName("countdown_timer")
        self.countdown_timer.setInterval(1000)
        self.countdown_timer.timeout.connect(self._tick)
        self.countdown_timer.start()

        self._reload()

    # Data flow

    def _visible_items(self) -> list[WorkItem]:
        return self._queue.items(self._clock(), search=self.search.text())

    def _reload(self) -> None:
        current = self.current_item()
        items = self._visible_items()
        if [i.lead_id for i in items] != [
            self.model.item_at(r).lead_id  # type: ignore[union-attr]
            for r in range(self.model.rowCount())
        ]:
            self.model.set_items(items)
            self._restore_selection(current.lead_id if current else None)
        self._update_counts(items)

    def _tick(self) -> None:
        self._ticks += 1
        self.model.tick()
        if self._ticks % RERANK_EVERY_TICKS == 0:
            self._reload()

    def _update_counts(self, items: list[WorkItem]) -> None:
        now = self._clock()
        breached = sum(1 for i in items if i.due_at < now and i.bucket(now) < 4)
        self.counts_label.setText(f"{len(items)} in queue · {breached} overdue")

    # Selection and the workspace

    def current_item(self) -> WorkItem | None:
        index = self.table.currentIndex()
        return self.model.item_at(index.row()) if index.isValid() else None

    def select_first(self) -> None:
        if self.model.rowCount():
            self._select_row(0)

    def _select_row(self, row: int) -> None:
        index = self.model.index(row, COL_NAME)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)

    def _restore_selection(self, lead_id: str | None) -> None:
        if lead_id is None:
            return
        for row in range(self.model.rowCount()):
            item = self.model.item_at(row)
            if item is not None and item.lead_id == lead_id:
                self._select_row(row)
                return

    def _show_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item = self.model.item_at(current.row())
        if item is None:
            self.workspace.clear()
            return
        detail = self._queue.detail(item.lead_id, self._clock())
        self.workspace.setHtml(render_lead_html(detail))
