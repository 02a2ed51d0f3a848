from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from app.domain.priority import WorkItem, WorkKind
from ui.queue_model import COL_ACTION, COL_DUE, COL_NAME, ItemRole, QueueModel

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def _item(n: int, due_in_s: int) -> WorkItem:
    return WorkItem(
        lead_id=f"L{n}",
        kind=WorkKind.NEW_LEAD,
        due_at=NOW + timedelta(seconds=due_in_s),
        score=50,
        tier="high",
        grade="B",
        name=f"Customer {n}",
        vehicle="2026 Toyota Camry",
        source="Dealer website",
        action="Call #1",
    )


def test_model_passes_the_qt_model_tester(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.set_items([_item(n, 60 * n - 120) for n in range(20)])
    model.tick()
    model.set_items([])


def test_countdown_text_and_colors(qtbot: QtBot) -> None:
    clock = [NOW]
    model = QueueModel(lambda: clock[0])
    model.set_items([_item(0, 299), _item(1, -75)])
    assert model.data(model.index(0, COL_DUE)) == "04:59"
    assert model.data(model.index(1, COL_DUE)) == "+01:15"
    assert model.data(model.index(0, COL_NAME)) == "Customer 0"
    assert model.data(model.index(0, COL_ACTION)) == "New: Call #1"
    assert model.data(model.index(0, COL_NAME), ItemRole).lead_id == "L0"
    breached = model.data(model.index(1, COL_DUE), Qt.ItemDataRole.ForegroundRole)
    on_track = model.data(model.index(0, COL_DUE), Qt.ItemDataRole.ForegroundRole)
    assert breached.color().name() == "#c62828"
    assert on_track.color().name() == "#2e7d32"
    assert "5-minute rule" in model.data(model.index(0, COL_NAME), Qt.ItemDataRole.ToolTipRole)
    clock[0] = NOW + timedelta(seconds=10)
    assert model.data(model.index(0, COL_DUE)) == "04:49"


def test_tick_emits_one_change_over_the_countdown_column(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW)
    model.set_items([_item(n, n) for n in range(50)])
    with qtbot.waitSignal(model.dataChanged) as blocker:
        model.tick()
    top, bottom = blocker.args[0], blocker.args[1]
    assert (top.row(), top.column(), bottom.row(), bottom.column()) == (0, COL_DUE, 49, COL_DUE)
