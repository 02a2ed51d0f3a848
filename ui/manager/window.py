"""The manager view: the live floor board beside queue health, KPIs with charts, call review.

`ManagerWindow` is wired to a running `app.services.manager.ManagerService`: it redraws on every
state the core publishes (after a server poke or a poll) and once a second for the clocks. When
the network is down it keeps the last board and a red band says how old it is; it is never blank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.services.manager import CallRecord, KpiReport, ManagerService, ManagerState
from ui import asyncs
from ui.manager.board import FloorBoard, QueueHealth
from ui.manager.calls import CallsPanel, ScorecardDialog
from ui.manager.kpis import KpiPanel
from ui.signals import keep_singletons_alive
from ui.theme import current_colors

log = logging.getLogger("bdc.ui")


def age_text(age: timedelta | None) -> str:
    if age is None:
        return "never"
    seconds = int(age.total_seconds())
    if seconds < 5:
        return "just now"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


class ManagerWindow(QMainWindow):
    def __init__(
        self,
        service: ManagerService,
        *,
        title: str = "BDC Workstation — Manager",
        open_dialog: Callable[[QDialog], int] | None = None,
    ) -> None:
        super().__init__()
        self.singleton_top_up = keep_singletons_alive(self)  # see ui/signals.py
        self.service = service
        self.setWindowTitle(title)
        self._open_dialog = open_dialog or (lambda dialog: dialog.exec())
        self.band = QLabel("")
        self.band.setObjectName("managerBand")
        self.band.setWordWrap(True)
        self.band.hide()
        self.headline = QLabel("")
        self.headline.setObjectName("managerHeadline")
        self.alert = QLabel("")
        self.alert.setObjectName("queueAlert")

        self.board = FloorBoard()
        self.queue = QueueHealth()
        self.kpis = KpiPanel()
        self.calls = CallsPanel()

        board_box = QWidget()
        board_layout = QVBoxLayout(board_box)
        board_layout.setContentsMargins(0, 0, 0, 0)
        board_title = QLabel("<b>Floor</b> — live")
        board_layout.addWidget(board_title)
        board_layout.addWidget(self.board)
        queue_box = QWidget()
        queue_layout = QVBoxLayout(queue_box)
        queue_layout.setContentsMargins(0, 0, 0, 0)
        queue_layout.addWidget(QLabel("<b>Queue health</b> — unworked leads (drag onto an agent)"))
        queue_layout.addWidget(self.alert)
        queue_layout.addWidget(self.queue)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(board_box)
        split.addWidget(queue_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        self.tabs = QTabWidget()
        self.tabs.addTab(split, "Floor")
        self.tabs.addTab(self.kpis, "KPIs")
        self.tabs.addTab(self.calls, "Call review")

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.band)
        layout.addWidget(self.headline)
        layout.addWidget(self.tabs)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Connecting…")

        self.board.leads_dropped.connect(self.reassign)
        self.queue.reassign_requested.connect(self.reassign)
        self.kpis.changed.connect(lambda period, group: self.load_kpis(period, group))
        self.calls.changed.connect(lambda period: self.load_calls(period))
        self.calls.review_requested.connect(self.review)
        self.tabs.currentChanged.connect(self._tab_changed)

        self._unsubscribe = service.subscribe(lambda state: self.show_state(state))
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.tick)
        self._timer.start()
        self.messages: list[str] = []  # what the status bar said (tests read it)
        self.show_state(service.state)

    # The board

    def show_state(self, state: ManagerState) -> None:
        now = self.service.now()
        if state.board is not None:
            self.board.show_board(state.board, now)
            self.queue.show_queue(state.board, now)
        self._show_band(state)
        self._show_headline(state)
        self._show_alert()

    def _show_band(self, state: ManagerState) -> None:
        colors = current_colors()
        if state.online:
            self.band.hide()
            return
        if state.signed_out:
            text = "Your sign-in expired: sign in again to see the floor."
        elif state.board is None:
            text = f"Cannot reach the lead API: {state.error}" if state.error else "Connecting…"
        else:
            text = (
                f"⚠ Offline — showing the floor as it was {age_text(state.age(self.service.now()))}"
                f" (last update {state.updated_at.astimezone():%H:%M:%S}). Retrying…"
                if state.updated_at
                else "⚠ Offline"
            )
        self.band.setText(text)
        self.band.setStyleSheet(
            f"background: {colors.banner_bad}; color: {colors.banner_text}; padding: 6px;"
            f" border-left: 4px solid {colors.red}; font-weight: bold;"
        )
        self.band.show()

    def _show_headline(self, state: ManagerState) -> None:
        board = state.board
        if board is None:
            self.headline.setText("Waiting for the floor…")
            return
        counts: dict[str, int] = {}
        for agent in board.agents:
            counts[agent.state] = counts.get(agent.state, 0) + 1
        calls = sum(a.calls for a in board.agents)
        contacts = sum(a.contacts for a in board.agents)
        appts = sum(a.appointments for a in board.agents)
        judged = sum(a.judged for a in board.agents)
        met = sum(a.met for a in board.agents)
        compliance = f"{met / judged:.0%}" if judged else "—"
        self.headline.setText(
            f"<span style='font-size:13pt'><b>{counts.get('on_call', 0)}</b> on call · "
            f"<b>{counts.get('available', 0)}</b> available · "
            f"<b>{counts.get('wrap_up', 0)}</b> wrap-up · "
            f"<b>{counts.get('paused', 0)}</b> paused · "
            f"<b>{counts.get('offline', 0)}</b> offline"
            f" &nbsp;|&nbsp; today: <b>{calls}</b> calls, <b>{contacts}</b> contacts, "
            f"<b>{appts}</b> appointments, 5-minute rule met <b>{compliance}</b></span>"
        )
        live = "live" if state.live else "polling"
        self.statusBar().showMessage(
            f"{'Online' if state.online else 'Offline'} ({live}) · floor updated "
            f"{age_text(state.age(self.service.now()))}"
        )

    def _show_alert(self) -> None:
        board = self.service.state.board
        if board is None:
            self.alert.setText("")
            return
        breached, at_risk = board.alerts(self.service.now())
        colors = current_colors()
        if breached or at_risk:
            self.alert.setText(
                f"⚠ {breached} breached · {at_risk} about to breach (under 2 min) — reassign them"
            )
            self.alert.setStyleSheet(
                f"background: {colors.banner_bad if breached else colors.banner_warn};"
                f" color: {colors.banner_text}; padding: 4px; font-weight: bold;"
            )
        else:
            self.alert.setText("✔ Every unworked lead is within its deadline")
            self.alert.setStyleSheet(f"color: {colors.green}; padding: 4px;")

    def tick(self) -> None:
        now = self.service.now()
        self.board.tick(now)
        self.queue.tick(now)
        self._show_alert()
        state = self.service.state
        self._show_band(state)
        if state.board is not None:
            self._show_headline(state)

    # Actions

    def say(self, message: str) -> None:
        self.messages.append(message)
        self.statusBar().showMessage(message, 8000)

    def reassign(self, lead_ids: list[str], agent_id: str | None) -> Any:
        if not lead_ids:
            return None
        board = self.service.state.board
        agent = board.agent(agent_id) if board and agent_id else None
        target = agent.name if agent else "the pool"

        def done(result: Any) -> None:
            moved = len(result.moved)
            text = f"Reassigned {moved} lead{'s' if moved != 1 else ''} to {target}"
            if result.failed:
                text += f"; {len(result.failed)} refused: {result.failed[0][1]}"
            self.say(text)

        return asyncs.run(
            self.service.reassign(lead_ids, agent_id),
            done,
            lambda exc: self.say(f"Reassigning failed: {exc}"),
        )

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.kpis:
            self.load_kpis(*self.kpis.selection())
        elif self.tabs.widget(index) is self.calls:
            self.load_calls(self.calls.selected_period())

    def load_kpis(self, period: str, group_by: str) -> Any:
        def show(report: KpiReport | None) -> None:
            if (period, group_by) == self.kpis.selection():
                self.kpis.show_report(report)

        return asyncs.run(self.service.kpis(period, group_by), show)

    def load_calls(self, period: str) -> Any:
        return asyncs.run(self.service.calls(period), self.calls.show_calls)

    def review(self, call: CallRecord) -> Any:
        dialog = ScorecardDialog(call, self)
        if self._open_dialog(dialog) != QDialog.DialogCode.Accepted:
            return None

        def saved(card: Any) -> None:
            self.say(f"QA scorecard saved for {call.agent_name}: {card.total}/{card.max}")
            self.load_calls(self.calls.selected_period())

        def failed(exc: BaseException) -> None:
            self.say(f"The scorecard was not saved: {exc}")
            QMessageBox.warning(self, "QA scorecard", f"The scorecard was not saved: {exc}")

        return asyncs.run(
            self.service.save_scorecard(
                call.call_id, dialog.scores(), dialog.comments(), dialog.summary()
            ),
            saved,
            failed,
        )

    def closeEvent(self, event: Any) -> None:
        self._timer.stop()
        self._unsubscribe()
        super().closeEvent(event)
