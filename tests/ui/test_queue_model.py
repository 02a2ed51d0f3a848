from dataclasses import replace
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from app.domain.priority import WorkItem, WorkKind
from tests.ui.conftest import FakeMonotonic
from ui.queue_model import (
    COL_ACTION,
    COL_DUE,
    COL_NAME,
    FLASH_SECONDS,
    ItemRole,
    MarkRole,
    QueueModel,
)
from ui.theme import LIGHT

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def _item(
    n: int, due_in_s: int, kind: WorkKind = WorkKind.NEW_LEAD, tier: str = "high"
) -> WorkItem:
    return WorkItem(
        lead_id=f"L{n}",
        kind=kind,
        due_at=NOW + timedelta(seconds=due_in_s),
        score=50,
        tier=tier,
        grade="B",
        name=f"Customer {n}",
        vehicle="2026 Toyota Camry",
        source="Dealer website",
        action="Call #1",
    )


def _ids(model: QueueModel) -> list[str]:
    return model.lead_ids()


def test_model_passes_the_qt_model_tester_through_every_kind_of_update(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW, colors=LIGHT)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    items = [_item(n, 60 * n - 120) for n in range(20)]
    model.set_items(items)
    model.tick()
    # removals in runs, a reorder, insertions, changed data
    reordered = [items[5], items[0], *items[7:12], items[2], _item(30, 5), *items[14:]]
    model.update_items(reordered)
    assert _ids(model) == [i.lead_id for i in reordered]
    changed = [*reordered[:3], _item(40, -30), *reordered[3:]]
    changed[0] = replace(changed[0], score=99, action="Call #2")
    model.update_items(changed)
    assert _ids(model) == [i.lead_id for i in changed]
    model.update_items(list(reversed(changed)))
    assert _ids(model) == [i.lead_id for i in reversed(changed)]
    model.tick()
    model.update_items([])
    assert model.rowCount() == 0
    model.set_items([])


def test_updates_never_reset_the_model(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW, colors=LIGHT)
    model.set_items([_item(n, n * 10) for n in range(10)])
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    moves: list[bool] = []
    model.layoutChanged.connect(lambda *a: moves.append(True))
    model.update_items([_item(n, n * 10) for n in (3, 0, 1, 2, 4, 5, 11)])
    assert not resets
    assert moves  # the reorder went through layoutChanged


def test_rows_that_moved_up_are_marked_and_the_mark_expires(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    model = QueueModel(lambda: NOW, monotonic=mono, colors=LIGHT)
    model.set_items([_item(n, n * 10) for n in range(4)])
    model.update_items([_item(n, n * 10) for n in (2, 0, 1, 3)])
    assert model.data(model.index(0, COL_NAME), MarkRole) == "moved_up"
    assert model.data(model.index(0, COL_NAME)).startswith("▲ ")
    assert model.data(model.index(1, COL_NAME), MarkRole) == ""  # moved down, not marked
    mono.now += 60
    model.tick()
    assert model.data(model.index(0, COL_NAME)) == "Customer 2"


def test_a_new_lead_flashes_and_is_announced(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    model = QueueModel(lambda: NOW, monotonic=mono, colors=LIGHT)
    model.set_items([_item(n, n * 10) for n in range(3)])
    with qtbot.waitSignal(model.item_arrived) as arrived:
        model.update_items([_item(9, -5, tier="hot"), *[_item(n, n * 10) for n in range(3)]])
    assert arrived.args[0].lead_id == "L9"
    assert model.is_flashing("L9")
    assert model.data(model.index(0, COL_NAME)).startswith("★ NEW")
    background = model.data(model.index(0, COL_NAME), Qt.ItemDataRole.BackgroundRole)
    assert background.color().name() == LIGHT.flash
    mono.now += FLASH_SECONDS + 1
    model.tick()
    assert not model.is_flashing("L9")
    # a search (set_items) never flashes
    model.set_items([_item(10, 0)])
    assert not model.is_flashing("L10")


def test_countdown_text_and_colors(qtbot: QtBot) -> None:
    clock = [NOW]
    model = QueueModel(lambda: clock[0], colors=LIGHT)
    model.set_items([_item(0, 299), _item(1, -75)])
    assert model.data(model.index(0, COL_DUE)) == "04:59"
    assert model.data(model.index(1, COL_DUE)) == "⚠ +01:15"  # counting up, and says so
    assert model.data(model.index(0, COL_NAME)) == "Customer 0"
    assert model.data(model.index(0, COL_ACTION)) == "New: Call #1"
    assert model.data(model.index(0, COL_NAME), ItemRole).lead_id == "L0"
    breached = model.data(model.index(1, COL_DUE), Qt.ItemDataRole.ForegroundRole)
    on_track = model.data(model.index(0, COL_DUE), Qt.ItemDataRole.ForegroundRole)
    assert breached.color().name() == LIGHT.red
    assert on_track.color().name() == LIGHT.green
    assert "5-minute rule" in model.data(model.index(0, COL_NAME), Qt.ItemDataRole.ToolTipRole)
    clock[0] = NOW + timedelta(seconds=10)
    assert model.data(model.index(0, COL_DUE)) == "04:49"


def test_tick_emits_one_change_over_the_countdown_column(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW, colors=LIGHT)
    model.set_items([_item(n, n) for n in range(50)])
    seen = []
    model.dataChanged.connect(lambda top, bottom, roles: seen.append((top, bottom)))
    model.tick()
    assert len(seen) == 1
    top, bottom = seen[0]
    assert (top.row(), top.column(), bottom.row(), bottom.column()) == (0, COL_DUE, 49, COL_DUE)


def test_one_lead_dropping_down_marks_nobody(qtbot: QtBot) -> None:
    model = QueueModel(lambda: NOW, colors=LIGHT)
    model.set_items([_item(n, n * 10) for n in range(6)])
    model.update_items([_item(n, n * 10) for n in (1, 2, 3, 4, 0, 5)])
    assert all(model.mark(f"L{n}") == "" for n in range(6))
    model.update_items([_item(n, n * 10) for n in (5, 1, 2, 3, 4, 0)])
    assert model.mark("L5") == "moved_up"
    assert [model.mark(f"L{n}") for n in range(5)] == [""] * 5
