"""The window on the real path, against a real lead API on loopback: the core (sync, local
store, outbox) runs on the qasync loop under pytest-qt, exactly as in the program."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.services.workstation import Workstation
from app.sync.engine import Connectivity
from tests.app.sync.live import Floor, LiveServer, rulebook
from tests.ui.conftest import FakeDialer
from ui.live import LiveSession


def wait(qtbot: QtBot, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
    future = asyncio.ensure_future(coro)
    qtbot.waitUntil(future.done, timeout=int(timeout * 1000))
    return future.result()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server.db")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def session(qtbot: QtBot, live: LiveServer, tmp_path: Path) -> Iterator[LiveSession]:
    floor = Floor(live, tmp_path)
    workstation, _faults = wait(qtbot, floor.open("ana"))
    session = LiveSession(workstation, rulebook(), FakeDialer())
    window = session.window
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: workstation.status.last_sync is not None, timeout=10_000)
    try:
        yield session
    finally:
        window.close()
        wait(qtbot, floor.close_all())


def _lead_in_window(qtbot: QtBot, live: LiveServer, session: LiveSession, name: str) -> str:
    """Posts a lead and waits for its row. Not a speed check (that is the POST -> row benchmark):
    the wait allows a loaded CI box, and a miss says how far the lead got."""
    window = session.window
    lead_id = live.post_lead(name)
    try:
        qtbot.waitUntil(lambda: window.model.row_of(lead_id) >= 0, timeout=15_000)
    except qtbot.TimeoutError:
        workstation = session.workstation
        stored = workstation.store.repository.stored_lead(lead_id)
        raise AssertionError(
            f"lead {name!r} ({lead_id}) has no row after 15 s: stored locally "
            f"{stored is not None} (agent {stored.lead.assigned_agent_id if stored else None}), "
            f"sync {workstation.status}"
        ) from None
    return lead_id


def test_a_lead_posted_to_the_server_appears_in_the_queue_and_flashes(
    qtbot: QtBot, live: LiveServer, session: LiveSession
) -> None:
    window = session.window
    lead_id = _lead_in_window(qtbot, live, session, "Flash")
    assert window.model.is_flashing(lead_id)
    row = window.model.row_of(lead_id)
    assert window.model.data(window.model.index(row, 1)).startswith("★ NEW")
    assert "Online" in window.sync_status.connectivity.text()


def test_server_stopped_shows_offline_and_pending_then_clears_when_it_returns(
    qtbot: QtBot, live: LiveServer, session: LiveSession
) -> None:
    window = session.window
    workstation: Workstation = session.workstation
    lead_id = _lead_in_window(qtbot, live, session, "Offline")
    live.stop()
    workstation.engine.pull_now()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert "Offline" in window.banner.label.text()
    assert workstation.status.connectivity is Connectivity.OFFLINE
    window._select_lead(lead_id)
    window.notes.setPlainText("Customer prefers mornings")
    window.save_note()
    qtbot.waitUntil(lambda: window.sync_status.pending.isVisible(), timeout=5_000)
    assert "1 change waiting" in window.sync_status.pending.text()
    assert "1 change will sync" in window.banner.label.text()
    assert "will send when online" in window.note_status.text()
    live.start()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=15_000)
    qtbot.waitUntil(lambda: not window.sync_status.pending.isVisible(), timeout=10_000)
    assert len(live.activity_ids(lead_id, kind="note")) == 1


def test_a_disposition_by_hotkey_reaches_the_server_once_and_selects_the_next(
    qtbot: QtBot, live: LiveServer, session: LiveSession
) -> None:
    window = session.window
    window.undo_window = timedelta(milliseconds=300)  # held this long (+ margin), then sent
    first = _lead_in_window(qtbot, live, session, "Hotkey")
    second = _lead_in_window(qtbot, live, session, "Following")
    window.refresh(force=True)
    window._select_lead(first)
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_F2)  # "No answer"
    qtbot.waitUntil(lambda: "No answer" in window.disposition_bar.result.text(), timeout=5_000)
    current = window.current_item()
    assert current is not None and current.lead_id != first
    assert window.model.row_of(second) >= 0
    qtbot.waitUntil(lambda: len(live.activity_ids(first, kind="disposition")) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: session.workstation.status.pending == 0, timeout=5_000)
    assert len(live.activity_ids(first, kind="disposition")) == 1  # exactly once
    assert len(live.activity_ids(first, kind="call")) == 1  # the attempt it records


def test_undo_in_the_window_takes_it_back_before_it_reaches_the_server(
    qtbot: QtBot, live: LiveServer, session: LiveSession
) -> None:
    window = session.window
    lead_id = _lead_in_window(qtbot, live, session, "Undo")
    window._select_lead(lead_id)
    before = window.current_item()
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_F4)  # "Busy"
    qtbot.waitUntil(lambda: window.disposition_bar.undo_button.isVisible(), timeout=5_000)
    assert session.workstation.status.pending >= 1
    qtbot.keyClick(window.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "Undone" in window.disposition_bar.result.text(), timeout=5_000)
    assert window.current_item() == before
    assert session.workstation.status.pending == 0
    qtbot.wait(600)
    assert live.activity_ids(lead_id, kind="disposition") == []
    assert live.activity_ids(lead_id, kind="call") == []


def test_the_loaded_and_synced_queue_is_moved_out_of_the_collectors_reach(
    qtbot: QtBot, session: LiveSession
) -> None:
    import gc

    qtbot.waitUntil(lambda: session._heap_frozen, timeout=10_000)
    assert gc.get_freeze_count() > 0
