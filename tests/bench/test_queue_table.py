"""The queue table at 50,000 items: the countdown tick and a re-rank after one lead changed,
each beside the naive way (a QSortFilterProxyModel sorting by seconds left, NOTES.md).

Main-thread time = the model's work plus the repaint it causes (processEvents until the view
has painted), in a QTableView sized like the window's queue (1200×800, 36 px rows).

The proxy baselines run in a child process (`proxy_baseline_child.py`): after them PySide6 aborts
the interpreter at exit (`bool_dealloc`), which must not fail `make bench`.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QAbstractItemView, QApplication, QTableView
from pytestqt.qtbot import QtBot

from app.domain.activities import Activity, ActivityKind, Direction
from tests.bench.data import derived_queue
from tests.bench.recorder import Recorder, median, percentile, size
from ui.queue_model import HEADERS, QueueModel

N = size(50_000, 500)


class _Paints(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def _table(qtbot: QtBot, model: Any) -> tuple[QTableView, _Paints]:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(36)
    view.horizontalHeader().setStretchLastSection(True)
    view.resize(1200, 800)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    paints = _Paints()
    view.viewport().installEventFilter(paints)
    QApplication.processEvents()
    return view, paints


def _timed(work: Any) -> float:
    """Milliseconds of `work()` plus the repaint it queued."""
    began = time.perf_counter()
    work()
    QApplication.processEvents()
    return (time.perf_counter() - began) * 1000


def _proxy_baselines(tmp: Any, items: list, now: datetime) -> dict[str, float]:
    """The naive baselines' figures, measured in a child process (see the module doc)."""
    path = tmp / "items.pickle"
    path.write_bytes(pickle.dumps((items, now)))
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.proxy_baseline_child", str(path), str(size(3, 2))],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the baseline child printed no figures (exit {done.returncode}): {done.stderr}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory, queue_now: Any) -> dict[str, float]:
    queue, now = queue_now
    return _proxy_baselines(tmp_path_factory.mktemp("proxy"), queue.items(now)[:N], now)


@pytest.fixture(scope="module")
def queue_now() -> Any:
    now = datetime.now(UTC)
    # enough generated leads that N of them have open work (about 4 in 5 do)
    return derived_queue(N * 13 // 10, now), now


def test_countdown_tick(
    qtbot: QtBot, bench: Recorder, queue_now: Any, baselines: dict[str, float]
) -> None:
    queue, now = queue_now
    items, keys = queue.ranked(now)
    items, keys = items[:N], keys[:N]
    assert len(items) == N
    model = QueueModel(lambda: now)
    _view, paints = _table(qtbot, model)
    model.set_items(items, keys)
    QApplication.processEvents()
    samples = [_timed(model.tick) for _ in range(size(60, 5))]
    assert paints.count >= len(samples), "every tick repainted the view"

    print(
        f"[bench] tick at {len(items)} items: p50 {median(samples):.2f} ms, max {max(samples):.2f}"
    )
    bench.record(
        "queue_tick_50k_ms",
        median(samples),
        "ms",
        5.0,
        baseline=baselines["tick_ms"],
    )
    bench.record("queue_tick_50k_p99_ms", percentile(samples, 99), "ms", 5.0)


def test_rerank_after_a_change(
    qtbot: QtBot, bench: Recorder, queue_now: Any, baselines: dict[str, float]
) -> None:
    """A customer at the bottom of the queue texts back: re-derive that lead, re-rank, apply the
    new order to the model (one row moved), repaint — what MainWindow.refresh does: the model is
    told which lead changed (`update_leads`, O(changes · log n))."""
    queue, now = queue_now
    model = QueueModel(lambda: now)
    _view, _ = _table(qtbot, model)
    model.set_items(*queue.ranked(now), now=now)
    QApplication.processEvents()
    print(f"[bench] re-rank over {model.rowCount()} items")
    samples = []
    paths: list[str] = []
    for _ in range(size(20, 3)):
        last = model.item_at(model.rowCount() - 1)
        assert last is not None
        history = queue.history(last.lead_id)
        reply = Activity(
            str(uuid.uuid4()),
            last.lead_id,
            ActivityKind.TEXT,
            now,
            direction=Direction.INBOUND,
            body="Can you call me after 5?",
        )
        lead = queue.detail(last.lead_id, now).lead

        def change(lead: Any = lead, history: Any = history, reply: Activity = reply) -> None:
            queue.upsert(lead, [*history, reply], now)
            items, keys = queue.ranked(now)
            if model.update_leads([lead.id], items, keys, now, queue.item_for) is None:
                paths.append("update_items")  # the window's fallback; the bench must not take it
                model.update_items(items, keys, now=now)

        samples.append(_timed(change))
        assert model.row_of(last.lead_id) < model.rowCount() - 1, "the replied lead moved up"

    assert len(HEADERS) == model.columnCount()
    assert paths == [], "the re-rank took the full-diff fallback, not the named-leads path"
    baseline = baselines["rerank_ms"]
    bench.record("queue_rerank_50k_ms", median(samples), "ms", 50.0, baseline=baseline)
    bench.record("queue_rerank_50k_p99_ms", percentile(samples, 99), "ms", 50.0)
