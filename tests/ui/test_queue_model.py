from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPersistentModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from app.domain.priority import Bucket, WorkItem, WorkKind, rank
from app.services.ranking import Ranking
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


# -- the incremental path: rows carry their sort keys (app.services.ranking)

LEADS = [f"L{n:02d}" for n in range(14)]
_keyed_items = st.builds(
    lambda n, kind, due, score, action: replace(
        _item(n, due * 60, kind), score=score, action=action
    ),
    st.integers(0, len(LEADS) - 1),
    st.sampled_from(list(WorkKind)),
    st.integers(-30, 90),
    st.integers(0, 3),
    st.sampled_from(["Call #1", "Text #2"]),
)
_operations = st.one_of(
    st.tuples(st.just("put"), _keyed_items),
    st.tuples(st.just("drop"), st.integers(0, len(LEADS) - 1)),
    st.tuples(st.just("advance"), st.integers(0, 20)),
    st.tuples(st.just("back"), st.integers(1, 20)),
    st.tuples(st.just("hold"), st.booleans()),  # the agent is reading: reorder=False
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_keyed_items, max_size=14), st.lists(_operations, max_size=30))
def test_random_changes_leave_the_model_in_the_order_of_a_full_sort(
    qapp: object, first: list[WorkItem], ops: list[tuple[str, object]]
) -> None:
    now = [NOW]
    current = {item.lead_id: item for item in first}
    ranking = Ranking()
    ranking.rebuild(current.values(), now[0])
    mono = FakeMonotonic()
    model = QueueModel(lambda: now[0], monotonic=mono, colors=LIGHT)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.set_items(*ranking.ranked(now[0]))
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    # a selection (persistent index) follows its lead through moves
    selected = model.item_at(0)
    persistent = QPersistentModelIndex(model.index(0, COL_NAME)) if selected else None
    hold = False
    for op, arg in ops:
        if op == "put":
            assert isinstance(arg, WorkItem)
            current[arg.lead_id] = arg
            ranking.put(arg.lead_id, arg, now[0])
        elif op == "drop":
            assert isinstance(arg, int)
            current.pop(f"L{arg}", None)
            ranking.drop(f"L{arg}")
        elif op == "advance":
            assert isinstance(arg, int)
            now[0] += timedelta(minutes=arg)
        elif op == "back":
            assert isinstance(arg, int)
            now[0] -= timedelta(minutes=arg)
        else:
            hold = bool(arg)
        items, keys = ranking.ranked(now[0])
        before = model.lead_ids()
        applied = model.update_items(items, keys, reorder=not hold)
        if not applied:
            assert hold and model.lead_ids() == before
            continue
        expected = rank(current.values(), now[0])
        assert [model.item_at(row) for row in range(model.rowCount())] == expected
        assert all(model.row_of(item.lead_id) == row for row, item in enumerate(expected))
        if hold:
            assert model.lead_ids() == before
        if persistent is not None and selected is not None:
            if persistent.isValid():
                assert model.item_at(persistent.row()).lead_id == selected.lead_id  # type: ignore[union-attr]
            else:  # its row left; the lead may come back later as a new row
                assert selected.lead_id not in before or selected.lead_id not in model.lead_ids()
                selected = None
    assert not resets


def _keyed(items: list[WorkItem]) -> tuple[list[WorkItem], list[tuple]]:
    ranked = sorted(items, key=lambda i: i.sort_key(NOW))
    return ranked, [(int(i.bucket(NOW)), i.due_at, -i.score, i.lead_id) for i in ranked]


def test_a_lead_jumping_up_is_one_row_move_and_the_only_row_marked(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    model = QueueModel(lambda: NOW, monotonic=mono, colors=LIGHT)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    ranking = Ranking()
    ranking.rebuild([_item(n, n * 60) for n in range(50)], NOW)
    model.set_items(*ranking.ranked(NOW))
    moves: list[tuple[int, int]] = []
    model.rowsMoved.connect(lambda _p, first, _last, _d, row: moves.append((first, row)))
    layouts: list[bool] = []
    model.layoutChanged.connect(lambda *_: layouts.append(True))
    ranking.put("L49", _item(49, -30, WorkKind.CUSTOMER_REPLY), NOW)
    assert model.update_items(*ranking.ranked(NOW))
    assert moves == [(49, 0)] and not layouts
    assert model.lead_ids()[0] == "L49" and model.mark("L49") == "moved_up"
    assert [model.mark(f"L{n}") for n in range(49)] == [""] * 49
    # dropping down marks nobody; data changed in place moves nothing
    ranking.put("L49", _item(49, 49 * 60 + 30), NOW)
    model.update_items(*ranking.ranked(NOW))
    assert model.lead_ids()[-1] == "L49"
    ranking.put("L10", replace(_item(10, 600), action="Call #2"), NOW)
    assert model.update_items(*ranking.ranked(NOW), reorder=False)
    assert model.data(model.index(10, COL_ACTION)) == "New: Call #2"
    assert len(moves) == 2


def test_keyed_arrivals_flash_and_the_overdue_count_bisects(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    model = QueueModel(lambda: NOW, monotonic=mono, colors=LIGHT)
    items = [_item(n, n * 60 - 150) for n in range(6)]  # three overdue
    model.set_items(*_keyed(items))
    assert model.overdue_count(NOW) == 3
    with qtbot.waitSignal(model.item_arrived):
        model.update_items(*_keyed([*items, _item(9, -500, tier="hot")]))
    assert model.is_flashing("L9") and model.row_of("L9") == 0
    assert model.overdue_count(NOW) == 4
    model.update_items(*_keyed(items[2:]))
    assert model.lead_ids() == [f"L{n}" for n in range(2, 6)]


# -- the named-changes path: the core says which leads changed (QueueService.on_changed)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(_keyed_items, max_size=14),
    st.lists(_operations, max_size=30),
    st.booleans(),
)
def test_named_changes_leave_the_model_in_the_order_of_a_full_sort(
    qapp: object,
    caplog: pytest.LogCaptureFixture,
    first: list[WorkItem],
    ops: list[tuple[str, object]],
    searched: bool,
) -> None:
    """`update_leads` with only the leads put or dropped named (and the clock moving both ways,
    callbacks and follow-ups turning due unnamed) gives the rows a full `rank()` gives; with a
    search (even leads only) as well. Never a reset, never the "out of step" fallback."""
    caplog.clear()
    now = [NOW]
    current = {item.lead_id: item for item in first}
    ranking = Ranking()
    ranking.rebuild(current.values(), now[0])
    model = QueueModel(lambda: now[0], monotonic=FakeMonotonic(), colors=LIGHT)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)

    def shown(items: list[WorkItem], keys: list[tuple] | None = None) -> tuple[list, list]:
        rows = [r for r, i in enumerate(items) if not searched or int(i.lead_id[1:]) % 2 == 0]
        return [items[r] for r in rows], [keys[r] for r in rows] if keys is not None else []

    model.set_items(*shown(*ranking.ranked(now[0])), now=now[0])
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    named: dict[str, None] = {}
    hold = went_back = False
    for op, arg in ops:
        if op == "put":
            assert isinstance(arg, WorkItem)
            current[arg.lead_id] = arg
            ranking.put(arg.lead_id, arg, now[0])
            named[arg.lead_id] = None
        elif op == "drop":
            assert isinstance(arg, int)
            current.pop(f"L{arg}", None)
            ranking.drop(f"L{arg}")
            named[f"L{arg}"] = None
        elif op == "advance":
            assert isinstance(arg, int)
            now[0] += timedelta(minutes=arg)
        elif op == "back":
            assert isinstance(arg, int)
            now[0] -= timedelta(minutes=arg)
            went_back = True
        else:
            hold = bool(arg)
        items, keys = shown(*ranking.ranked(now[0]))
        before = model.lead_ids()
        applied = model.update_leads(named, items, keys, now[0], current.get, reorder=not hold)
        if applied is None:  # the clock went back: every row compared
            assert went_back
            applied = model.update_items(items, keys, reorder=not hold, now=now[0])
        if not applied:
            assert hold and model.lead_ids() == before
            continue
        named.clear()
        went_back = False
        expected, _ = shown(rank(current.values(), now[0]))
        assert [model.item_at(row) for row in range(model.rowCount())] == expected
        assert all(model.row_of(item.lead_id) == row for row, item in enumerate(expected))
        # the rows' keys are the ranking's too (a turned row's bucket counts it as overdue)
        overdue = [i for i in expected if i.bucket(now[0]) < Bucket.UPCOMING and i.due_at < now[0]]
        assert model.overdue_count(now[0]) == len(overdue)
        if hold:
            assert model.lead_ids() == before
    assert not resets
    assert "out of step" not in caplog.text


def test_a_change_nobody_named_is_caught_and_every_row_updated(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    ranking = Ranking()
    ranking.rebuild([_item(n, n * 60) for n in range(10)], NOW)
    model = QueueModel(lambda: NOW, colors=LIGHT)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.set_items(*ranking.ranked(NOW), now=NOW)
    current = {f"L{n}": _item(n, n * 60) for n in range(10)}
    current["L3"] = _item(3, -600)
    ranking.put("L3", current["L3"], NOW)
    del current["L7"]  # unnamed
    ranking.drop("L7")
    assert model.update_leads(["L3"], *ranking.ranked(NOW), NOW, current.get)
    assert model.lead_ids() == [i.lead_id for i in rank(current.values(), NOW)]
    assert "out of step" in caplog.text


def test_without_the_time_of_the_keys_the_named_path_declines(qtbot: QtBot) -> None:
    ranking = Ranking()
    ranking.rebuild([_item(n, n * 60) for n in range(5)], NOW)
    model = QueueModel(lambda: NOW, colors=LIGHT)
    model.set_items(*ranking.ranked(NOW))  # no `now`
    assert model.update_leads([], *ranking.ranked(NOW), NOW, lambda _id: None) is None
    model.update_items(*ranking.ranked(NOW), now=NOW)
    assert model.update_leads([], *ranking.ranked(NOW), NOW, lambda _id: None) is True
    earlier = NOW - timedelta(seconds=1)
    assert model.update_leads([], *ranking.ranked(earlier), earlier, lambda _id: None) is None
