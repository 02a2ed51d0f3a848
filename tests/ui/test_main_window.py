import random
from datetime import timedelta

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from app.demo.generator import make_lead
from app.domain.activities import ActivityKind
from app.domain.priority import WorkItem, WorkKind
from app.sync.engine import Connectivity, SyncStatus
from app.telephony.model import CallEnded, EndCause
from tests.ui.conftest import NOW, FakeDialer, FakeMonotonic
from ui.composition import build_preview_window
from ui.main_window import SETTLE_SECONDS, MainWindow
from ui.ports import PresenceState
from ui.queue_model import COL_NAME


def _window(qtbot: QtBot, clock=lambda: NOW, **kwargs) -> MainWindow:  # type: ignore[no-untyped-def]
    kwargs.setdefault("dialer", FakeDialer())
    window = build_preview_window(lead_count=120, clock=clock, **kwargs)
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def _first_callable(window: MainWindow) -> int:
    """The first row whose work is a first call (a new lead with a phone)."""
    for row in range(window.model.rowCount()):
        item = window.model.item_at(row)
        if item is not None and item.kind is WorkKind.NEW_LEAD and item.action == "Call #1":
            return row
    raise AssertionError("no new lead with a phone in the demo data")


def test_demo_window_shows_a_ranked_live_queue(qtbot: QtBot) -> None:
    window = _window(qtbot)
    model = window.model
    assert model.rowCount() > 50
    first = model.item_at(0)
    assert first is not None
    assert first.kind is WorkKind.NEW_LEAD  # fresh leads with running clocks come first
    window.select_first()
    html = window.lead_card.toHtml()
    assert first.name in html
    assert "Response clock" in html
    assert "in queue" in window.counts_label.text()
    assert window.countdown.text().endswith("left") or "overdue" in window.countdown.text()
    assert "Introduction" in window.script.toPlainText()  # the call script, sections visible


def test_search_filters_the_queue(qtbot: QtBot) -> None:
    window = _window(qtbot)
    total = window.model.rowCount()
    target = window.model.item_at(3)
    assert target is not None
    qtbot.keyClicks(window.search, target.name)
    assert 1 <= window.model.rowCount() < total
    assert all(
        target.name.lower() in (window.model.item_at(r).name.lower())  # type: ignore[union-attr]
        for r in range(window.model.rowCount())
    )
    window.search.clear()
    assert window.model.rowCount() == total


def test_disposition_by_hotkey_logs_advances_the_cadence_and_selects_the_next(
    qtbot: QtBot,
) -> None:
    window = _window(qtbot)
    row = _first_callable(window)
    window._select_row(row)
    item = window.current_item()
    assert item is not None
    before = window.queue.detail(item.lead_id, NOW)  # type: ignore[attr-defined]
    assert before.plan.next_steps[0].step_id in ("first_call", "acknowledgment")

    qtbot.keyClick(window.table, Qt.Key.Key_F2)  # "No answer"

    after = window.queue.detail(item.lead_id, NOW)  # type: ignore[attr-defined]
    kinds = [(a.kind, a.disposition) for a in after.timeline]
    assert (ActivityKind.DISPOSITION, "no_answer") in kinds
    assert any(a.kind is ActivityKind.CALL and a.answered is False for a in after.timeline)
    done = [s.step_id for s in after.plan.done]
    assert "first_call" in done  # the cadence moved on
    items = {i.lead_id: i for i in window.queue.items(NOW)}  # type: ignore[attr-defined]
    assert item.lead_id not in items or items[item.lead_id].kind is not WorkKind.NEW_LEAD
    nxt = window.current_item()
    assert nxt is not None and nxt.lead_id != item.lead_id
    result = window.disposition_bar.result.text()
    assert "No answer" in result and "Next:" in result
    assert after.next_text.split(" ")[0] in result
    assert window.disposition_bar.undo_button.isVisible()


def test_undo_restores_the_lead(qtbot: QtBot) -> None:
    window = _window(qtbot)
    window._select_row(_first_callable(window))
    item = window.current_item()
    assert item is not None
    window.log_disposition("busy")
    qtbot.mouseClick(window.disposition_bar.undo_button, Qt.MouseButton.LeftButton)
    detail = window.queue.detail(item.lead_id, NOW)  # type: ignore[attr-defined]
    assert all(a.kind is not ActivityKind.DISPOSITION for a in detail.timeline)
    assert window.current_item() == item
    assert not window.disposition_bar.undo_button.isVisible()


def test_callback_asks_for_a_time_in_their_zone_and_schedules_it(qtbot: QtBot) -> None:
    asked = []

    def pick(disposition, name, zone, now):  # type: ignore[no-untyped-def]
        asked.append((disposition.code, zone.key))
        return (now + timedelta(days=1)).astimezone(zone).replace(hour=16, minute=30)

    window = _window(qtbot, pick_time=pick)
    window._select_row(_first_callable(window))
    item = window.current_item()
    assert item is not None
    qtbot.keyClick(window.table, Qt.Key.Key_F7)
    assert asked and asked[0][0] == "callback_requested"
    detail = window.queue.detail(item.lead_id, NOW)  # type: ignore[attr-defined]
    assert "callback" in detail.next_text.lower()
    assert "4:30 PM" in window.disposition_bar.result.text()


def test_dial_hotkey_calls_the_dialer_and_hang_up_brings_the_likely_outcome(
    qtbot: QtBot,
) -> None:
    dialer = FakeDialer()
    window = _window(qtbot, dialer=dialer)
    window._select_row(_first_callable(window))
    item = window.current_item()
    assert item is not None
    qtbot.keyClick(window.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(dialer.dialed))
    request = dialer.dialed[0]
    assert request.lead_id == item.lead_id and request.number.startswith("+1")
    assert window.presence.presence.state is PresenceState.ON_CALL
    assert "Dialing" in window.call_status.text()
    dialer.hub.emit(
        CallEnded(
            request.call_id,
            NOW,
            EndCause.VOICEMAIL,
            "voicemail greeting",
            started_at=NOW,
            answered_at=NOW,
        )
    )
    assert window.disposition_bar.likely == "left_voicemail"
    assert window.disposition_bar.buttons["left_voicemail"].text().startswith("◆ F3")
    assert window.presence.presence.state is PresenceState.WRAP_UP
    assert window.last_call is not None
    qtbot.keyClick(window.table, Qt.Key.Key_F3)
    detail = window.queue.detail(item.lead_id, NOW)  # type: ignore[attr-defined]
    assert any(a.kind is ActivityKind.CALL for a in detail.timeline)
    assert window.last_call is None
    assert window.presence.presence.state is PresenceState.AVAILABLE


def test_a_new_lead_added_appears_and_flashes(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    window = _window(qtbot, monotonic=mono)
    lead = make_lead(random.Random(99), NOW - timedelta(seconds=20), lead_id="fresh-lead")
    window.queue.upsert(lead, [], NOW)  # type: ignore[attr-defined]
    window.refresh(force=True)
    row = window.model.row_of("fresh-lead")
    assert row >= 0
    assert window.model.is_flashing("fresh-lead")
    assert window.model.data(window.model.index(row, COL_NAME)).startswith("★ NEW")


def test_a_hot_lead_raises_a_notification(qtbot: QtBot) -> None:
    window = _window(qtbot)
    hot = WorkItem(
        "x", WorkKind.NEW_LEAD, NOW, 90, "hot", "A", "Pat Hot", "Camry", "Web", "Call #1"
    )
    window.model.item_arrived.emit(hot)
    assert window.notifier.shown and "Pat Hot" in window.notifier.shown[-1][0]


def test_reorder_waits_until_the_agent_leaves_the_list_alone(qtbot: QtBot) -> None:
    mono = FakeMonotonic()
    window = _window(qtbot, monotonic=mono)
    order = window.model.lead_ids()
    last = window.model.item_at(len(order) - 1)
    assert last is not None
    # the last row becomes urgent: a customer reply puts it first
    lead = window.queue.detail(last.lead_id, NOW).lead  # type: ignore[attr-defined]
    history = list(reversed(window.queue.detail(last.lead_id, NOW).timeline))  # type: ignore[attr-defined]
    from app.domain.activities import Activity, Direction

    reply = Activity(
        id="reply-1",
        lead_id=lead.id,
        kind=ActivityKind.TEXT,
        at=NOW - timedelta(seconds=30),
        direction=Direction.INBOUND,
        body="Is it still available?",
    )
    window.queue.upsert(lead, [*history, reply], NOW)  # type: ignore[attr-defined]
    window._touched()  # the agent is reading the list
    window.refresh()
    assert window.model.lead_ids() == order  # nothing jumped
    mono.now += SETTLE_SECONDS + 0.1
    window.refresh()
    assert window.model.lead_ids()[0] == last.lead_id
    assert window.model.mark(last.lead_id) == "moved_up"


def test_offline_banner_and_pending_count_show_and_clear(qtbot: QtBot) -> None:
    window = _window(qtbot)
    window.set_sync_state(
        SyncStatus(Connectivity.OFFLINE, pending=3, last_error="connection refused")
    )
    assert window.banner.isVisible()
    assert "Offline" in window.banner.label.text()
    assert "3 changes will sync" in window.banner.label.text()
    assert window.sync_status.pending.isVisible()
    assert "3 changes waiting" in window.sync_status.pending.text()
    assert "Offline" in window.sync_status.connectivity.text()
    window.set_sync_state(SyncStatus(Connectivity.ONLINE, pending=0, last_sync=NOW, live=True))
    assert not window.banner.isVisible()
    assert not window.sync_status.pending.isVisible()
    assert "Online" in window.sync_status.connectivity.text()
    assert "synced" in window.sync_status.last_sync.text()
    window.set_sync_state(SyncStatus(Connectivity.SIGN_IN_EXPIRED, pending=1))
    assert window.banner.isVisible() and window.banner.sign_in.isVisible()


def test_the_first_download_shows_how_many_leads_of_how_many(qtbot: QtBot) -> None:
    window = _window(qtbot)
    window.set_sync_state(SyncStatus(Connectivity.SYNCING))
    assert window.progress.isVisible()
    assert window.progress.format() == "Loading your queue…"
    window.set_sync_state(
        SyncStatus(Connectivity.SYNCING, snapshot_loaded=12_500, snapshot_total=38_824)
    )
    assert window.progress.format() == "Loading your queue… 12,500 of 38,824 leads"
    assert (window.progress.value(), window.progress.maximum()) == (12_500, 38_824)
    # the text fits the bar: nothing clipped
    text = window.progress.text()
    width = window.progress.fontMetrics().horizontalAdvance(text)
    assert width < window.progress.contentsRect().width(), (text, width)
    window.set_sync_state(SyncStatus(Connectivity.ONLINE, last_sync=NOW))
    assert not window.progress.isVisible()
    # a full resync later (the server refused the cursor) says "Reloading"
    window.set_sync_state(
        SyncStatus(Connectivity.SYNCING, last_sync=NOW, snapshot_loaded=500, snapshot_total=900)
    )
    assert window.progress.format() == "Reloading your queue… 500 of 900 leads"


def test_pause_shows_reason_and_timer(qtbot: QtBot) -> None:
    clock = [NOW]
    window = _window(qtbot, clock=lambda: clock[0])
    qtbot.keyClick(window.table, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert window.presence.presence.state is PresenceState.PAUSED
    clock[0] = NOW + timedelta(minutes=2, seconds=5)
    window._tick()
    assert "Paused: Break" in window.presence.label.text()
    assert "02:05" in window.presence.label.text()
    assert window.backend.presence_log[-1] == (PresenceState.PAUSED, "break")  # type: ignore[attr-defined]
    qtbot.keyClick(window.table, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert window.presence.presence.state is PresenceState.AVAILABLE


def test_keyboard_moves_through_the_queue_and_f1_shows_the_sheet(qtbot: QtBot) -> None:
    window = _window(qtbot)
    window.select_first()
    qtbot.keyClick(window.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.table.currentIndex().row() == 1
    qtbot.keyClick(window.table, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.table.currentIndex().row() == 0
    qtbot.keyClick(window.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.search.hasFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_F1)
    sheet = window.shortcut_sheet
    table = sheet.findChild(QTableWidget, "shortcut_table")
    keys = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert "F2" in keys and "Ctrl+D" in keys and "Ctrl+Return" not in keys
    sheet.close()


def test_layout_persists(qtbot: QtBot, settings: QSettings) -> None:
    window = _window(qtbot, settings=settings)
    window.table.setColumnWidth(2, 333)
    window.splitter.setSizes([700, 700])
    window.close()
    again = _window(qtbot, settings=settings)
    assert again.table.columnWidth(2) == 333
