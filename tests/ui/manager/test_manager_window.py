"""The manager view against a real lead API on loopback, on the qasync loop under pytest-qt."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from app.domain.activities import ActivityKind, Direction
from app.services.manager import ManagerService
from app.sync.api import LeadApi
from server.db import transaction, utcnow
from tests.app.sync.live import Faults, FaultyTransport, LiveServer
from tests.server.test_floor import add_activity, add_lead
from ui.manager.board import LEAD_IDS_MIME
from ui.manager.calls import ScorecardDialog
from ui.manager.window import ManagerWindow


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
def faults() -> Faults:
    return Faults()


@pytest.fixture
def window(qtbot: QtBot, live: LiveServer, faults: Faults) -> Iterator[ManagerWindow]:
    api = LeadApi(live.base_url, token=live.token("mia"), transport=FaultyTransport(faults))
    service = ManagerService(api, poll_interval=0.5, reconnect_delay=0.1)
    wait(qtbot, service.start())
    window = ManagerWindow(service)
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    qtbot.waitExposed(window)
    try:
        yield window
    finally:
        window.close()
        wait(qtbot, service.close())
        wait(qtbot, api.aclose())


def _row_of(window: ManagerWindow, name: str) -> int:
    return next(r for r in range(window.board.rowCount()) if window.board.item(r, 0).text() == name)


def test_the_board_shows_an_agents_state_change_within_a_second(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer
) -> None:
    qtbot.waitUntil(lambda: window.service.state.live, timeout=5000)
    assert window.board.item(_row_of(window, "Ana"), 1).text() == "○ Offline"
    reply = live.request("POST", "/v1/presence", "ana", json={"state": "paused", "reason": "lunch"})
    assert reply.status_code == 200
    began = time.monotonic()
    qtbot.waitUntil(
        lambda: window.board.item(_row_of(window, "Ana"), 1).text() == "❚❚ Paused", timeout=1000
    )
    print(f"presence -> board cell: {round((time.monotonic() - began) * 1000)} ms")
    row = _row_of(window, "Ana")
    assert window.board.item(row, 2).text() == "Lunch"
    assert "<b>1</b> paused" in window.headline.text()


def test_reassign_by_menu_and_by_drop_onto_an_agent(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer
) -> None:
    first = live.post_lead("Menu", "Moved")
    second = live.post_lead("Drop", "Moved")
    qtbot.waitUntil(
        lambda: {first, second} <= {q.lead_id for q in window.queue.leads}, timeout=5000
    )
    window.queue.select_ids([first])
    menu = window.queue.build_menu()
    assert menu is not None
    sub = next(a.menu() for a in menu.actions() if a.menu() is not None)
    to_ben = next(a for a in sub.actions() if a.text().startswith("Ben"))
    to_ben.trigger()
    qtbot.waitUntil(
        lambda: any(q.lead_id == first and q.agent_name == "Ben" for q in window.queue.leads),
        timeout=5000,
    )
    qtbot.waitUntil(
        lambda: any("Reassigned 1 lead to Ben" in m for m in window.messages), timeout=5000
    )
    # Drag the other one onto Ana's row.
    window.queue.select_ids([second])
    data = QMimeData()
    data.setData(LEAD_IDS_MIME, " ".join(window.queue.selected_ids()).encode())
    row = _row_of(window, "Ana")
    target = QPointF(QPoint(20, window.board.rowViewportPosition(row) + 5))
    drop = QDropEvent(
        target,
        Qt.DropAction.MoveAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.board.dropEvent(drop)
    qtbot.waitUntil(
        lambda: any(q.lead_id == second and q.agent_name == "Ana" for q in window.queue.leads),
        timeout=5000,
    )


def test_breached_leads_float_to_the_top_with_an_alert(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer
) -> None:
    now = utcnow()
    with transaction(live.sessions) as session:
        late = add_lead(session, "lakeside", now - timedelta(hours=1), name=("Very", "Late"))
        late.due_at = now - timedelta(minutes=40)
        soon = add_lead(session, "lakeside", now, name=("Almost", "Due"))
        soon.due_at = now + timedelta(seconds=70)
        fine = add_lead(session, "lakeside", now, name=("Plenty", "Time"))
        fine.due_at = now + timedelta(minutes=30)
    wait(qtbot, window.service.refresh())
    names = [window.queue.item(r, 1).text() for r in range(window.queue.rowCount())]
    assert names[:3] == ["Very Late", "Almost Due", "Plenty Time"]
    assert window.queue.item(0, 0).text().startswith("⚠ +")
    assert "1 breached · 1 about to breach" in window.alert.text()


def test_kpi_charts_render_offscreen_and_export_csv(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer, tmp_path: Path
) -> None:
    now = utcnow()
    with transaction(live.sessions) as session:
        lead = add_lead(session, "lakeside", now - timedelta(minutes=20), agent="user-ana")
        add_activity(
            session, lead, ActivityKind.CALL, now - timedelta(minutes=18), "user-ana",
            direction=Direction.OUTBOUND, answered=True, duration_s=200,
        )  # fmt: skip
    window.tabs.setCurrentWidget(window.kpis)
    qtbot.waitUntil(lambda: window.kpis.report is not None, timeout=5000)
    report = window.kpis.report
    assert report is not None
    assert report.total.leads == 1
    assert report.trend, "the daily trend feeds the charts"
    labels = [window.kpis.table.item(r, 0).text() for r in range(window.kpis.table.rowCount())]
    assert labels[-2:] == ["Total", "Benchmark"]
    assert "Ana" in labels
    plotted = window.kpis.rates_chart.getPlotItem().listDataItems()
    assert len(plotted) == 5  # ≤5 min, contact, appointment, show, close
    assert window.kpis.volume_chart.getPlotItem().items, "the bars are drawn"
    image = window.kpis.rates_chart.grab().toImage()
    assert image.width() > 100
    colors = {image.pixelColor(x, y).name() for x in range(0, image.width(), 7)
              for y in range(0, image.height(), 7)}  # fmt: skip
    assert len(colors) > 3, "the chart drew something"
    window.kpis.save_path = lambda suggested: str(tmp_path / suggested)
    path = window.kpis.export_csv()
    assert path == str(tmp_path / "bdc-kpis-today-by-agent.csv")
    rows = list(csv.reader(io.StringIO(Path(path).read_text())))
    assert rows[0][:3] == ["period", "group_by", "group"]
    total = next(r for r in rows if r[2] == "Total")
    assert total[3:6] == ["1", "1", "1"]  # leads, worked, contacted
    assert next(r for r in rows if r[2] == "Benchmark")[-4:] == ["50", "35", "65", "30"]


def test_a_call_is_reviewed_with_a_scorecard(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer
) -> None:
    now = utcnow()
    with transaction(live.sessions) as session:
        lead = add_lead(session, "lakeside", now - timedelta(minutes=20), agent="user-ben")
        add_activity(
            session, lead, ActivityKind.CALL, now - timedelta(minutes=18), "user-ben",
            direction=Direction.OUTBOUND, answered=True, duration_s=321,
        )  # fmt: skip
    window.tabs.setCurrentWidget(window.calls)
    qtbot.waitUntil(lambda: window.calls.table.rowCount() == 1, timeout=5000)
    assert window.calls.table.item(0, 1).text() == "Ben"
    assert window.calls.table.item(0, 3).text() == "5m 21s"
    assert window.calls.table.item(0, 6).text() == "Review…"

    def fill(dialog: QDialog) -> int:
        assert isinstance(dialog, ScorecardDialog)
        save = dialog.buttons.buttons()[0]
        assert not save.isEnabled()  # every criterion first
        for key, score in zip(
            ("greeting", "needs_assessment", "product_knowledge", "objection_handling",
             "appointment_setting", "crm_notes"), (5, 4, 3, 4, 5, 2), strict=True,
        ):  # fmt: skip
            dialog.set_score(key, score)
        dialog.set_comment("crm_notes", "Log the trade-in")
        assert "23/30" in dialog.total.text()
        return int(QDialog.DialogCode.Accepted)

    window._open_dialog = fill
    window.calls.table.selectRow(0)
    window.calls.review.click()
    qtbot.waitUntil(lambda: window.calls.table.item(0, 6).text() == "✔ 23/30", timeout=5000)
    notes = live.activity_ids(kind="note")
    assert len(notes) == 1


def test_offline_the_board_stays_with_a_band_saying_how_old_it_is(
    qtbot: QtBot, window: ManagerWindow, live: LiveServer
) -> None:
    rows = window.board.rowCount()
    assert rows == 2
    live.stop()
    qtbot.waitUntil(lambda: not window.service.state.online, timeout=5000)
    window.tick()
    assert window.band.isVisible()
    assert "Offline — showing the floor as it was" in window.band.text()
    assert window.board.rowCount() == rows  # never blank
    live.start()
    qtbot.waitUntil(lambda: window.service.state.online, timeout=5000)
    window.tick()
    assert not window.band.isVisible()
