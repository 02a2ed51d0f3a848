"""The naive baselines of the queue table (NOTES.md), in a process of their own.

A QSortFilterProxyModel over the Python model at 50,000 rows makes millions of Python `data()`
calls; afterwards PySide6 6.12 on Python 3.11 aborts the interpreter at exit with
`Fatal Python error: bool_dealloc` (a reference-count bug in the C extension). Run here, that crash
cannot take the benchmark run's exit status with it: the parent reads the one JSON line this
prints before exiting and ignores how the process ended.

    python -m tests.bench.proxy_baseline_child ITEMS.pickle TICKS
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any


def main(path: str, ticks: int) -> None:
    from PySide6.QtCore import QSortFilterProxyModel, Qt
    from PySide6.QtWidgets import QAbstractItemView, QApplication, QTableView

    from ui.queue_model import COL_DUE, QueueModel, SecondsLeftRole

    app = QApplication.instance() or QApplication([])
    items, now = pickle.loads(Path(path).read_bytes())

    class NaiveQueueModel(QueueModel):
        """What a proxy-sorted design does each second: the countdown column, all roles."""

        def tick(self) -> None:
            if self.rowCount():
                top, bottom = self.index(0, COL_DUE), self.index(self.rowCount() - 1, COL_DUE)
                self.dataChanged.emit(top, bottom)

    def table(model: Any) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(36)
        view.horizontalHeader().setStretchLastSection(True)
        view.resize(1200, 800)
        view.show()
        app.processEvents()
        return view

    def timed(work: Any) -> float:
        began = time.perf_counter()
        work()
        app.processEvents()
        return (time.perf_counter() - began) * 1000

    # the tick: dynamic sort by seconds left, one role-less dataChanged over the column
    naive = NaiveQueueModel(lambda: now)
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(naive)
    proxy.setSortRole(SecondsLeftRole)
    proxy.setDynamicSortFilter(True)
    view = table(proxy)
    naive.set_items(list(reversed(items)))
    proxy.sort(COL_DUE, Qt.SortOrder.AscendingOrder)
    app.processEvents()
    tick = sorted(timed(naive.tick) for _ in range(ticks))
    view.close()

    # the re-rank: QSortFilterProxyModel.sort() of the same rows
    naive = QueueModel(lambda: now)
    naive.set_items(items)
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(naive)
    proxy.setSortRole(SecondsLeftRole)
    view = table(proxy)
    proxy.sort(COL_DUE, Qt.SortOrder.DescendingOrder)
    rerank = timed(lambda: proxy.sort(COL_DUE, Qt.SortOrder.AscendingOrder))
    view.close()
    print(json.dumps({"tick_ms": tick[len(tick) // 2], "rerank_ms": rerank}), flush=True)
    # Skip the interpreter's teardown, where the PySide6 refcount bug aborts.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
