"""The live floor board and the queue-health table of the manager view.

Both are small (a floor has tens of agents and, at worst, a few hundred unworked leads), so they
are QTableWidgets filled from the core's frozen `Board`; countdowns and times in state are redrawn
every second from the same data. Leads are dragged from the queue onto an agent to reassign them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDrag, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from app.services.manager import AgentOnFloor, Board, QueueLead
from ui.signals import emit
from ui.theme import current_colors

LEAD_IDS_MIME = "application/x-bdc-lead-ids"

STATE_LABELS = {
    "available": "● Available",
    "on_call": "☎ On call",
    "wrap_up": "✎ Wrap-up",
    "paused": "❚❚ Paused",
    "offline": "○ Offline",
}


def clock_text(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}:{secs:02d}"


def countdown_text(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    if seconds <= 0:
        over = -seconds
        if over >= 86_400:
            return f"⚠ +{over // 86_400}d"
        return f"⚠ +{clock_text(over)}"
    return clock_text(seconds)


def _item(text: str, *, align_right: bool = False, data: object = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if data is not None:
        item.setData(Qt.ItemDataRole.UserRole, data)
    return item


class FloorBoard(QTableWidget):
    """One row per agent; drop leads on a row to give them to that agent."""

    HEADERS = (
        "Agent",
        "State",
        "With / reason",
        "For",
        "Calls",
        "Contacts",
        "Appts",
        "Met deadline",
    )
    leads_dropped = Signal(list, str)  # lead ids, agent id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().hide()
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.setToolTip("Drag leads from the queue onto an agent to give them to that agent")
        self._agents: tuple[AgentOnFloor, ...] = ()

    @property
    def agents(self) -> tuple[AgentOnFloor, ...]:
        return self._agents

    def show_board(self, board: Board, now: datetime) -> None:
        order = {"on_call": 0, "wrap_up": 1, "available": 2, "paused": 3, "offline": 4}
        agents = tuple(sorted(board.agents, key=lambda a: (order.get(a.state, 5), a.name)))
        self._agents = agents
        colors = current_colors()
        tint = {
            "available": colors.green,
            "on_call": colors.blue,
            "wrap_up": colors.orange,
            "paused": colors.red,
            "offline": colors.muted,
        }
        self.setRowCount(len(agents))
        for row, agent in enumerate(agents):
            state = _item(STATE_LABELS.get(agent.state, agent.state), data=agent.user_id)
            state.setForeground(QBrush(QColor(tint.get(agent.state, colors.muted))))
            font = state.font()
            font.setBold(True)
            state.setFont(font)
            if agent.state == "on_call":
                detail = agent.customer_name or "a customer"
            elif agent.state == "paused":
                detail = (agent.reason or "paused").capitalize()
            else:
                detail = ""
            compliance = agent.compliance
            cells = (
                _item(agent.name, data=agent.user_id),
                state,
                _item(detail),
                _item(
                    clock_text(agent.seconds_in_state(now)) if agent.state != "offline" else "",
                    align_right=True,
                ),
                _item(str(agent.calls), align_right=True),
                _item(str(agent.contacts), align_right=True),
                _item(str(agent.appointments), align_right=True),
                _item(
                    "—" if compliance is None else f"{compliance:.0%} ({agent.met}/{agent.judged})",
                    align_right=True,
                ),
            )
            if compliance is not None:
                good = compliance >= 0.9
                cells[7].setForeground(QBrush(QColor(colors.green if good else colors.red)))
            for column, cell in enumerate(cells):
                self.setItem(row, column, cell)

    def tick(self, now: datetime) -> None:
        for row, agent in enumerate(self._agents):
            cell = self.item(row, 3)
            if cell is not None and agent.state != "offline":
                cell.setText(clock_text(agent.seconds_in_state(now)))

    def agent_at(self, pos: QPoint) -> AgentOnFloor | None:
        row = self.rowAt(pos.y())
        return self._agents[row] if 0 <= row < len(self._agents) else None

    # Drops from the queue

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(LEAD_IDS_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        agent = self.agent_at(event.position().toPoint())
        if event.mimeData().hasFormat(LEAD_IDS_MIME) and agent is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        agent = self.agent_at(event.position().toPoint())
        if agent is None or not event.mimeData().hasFormat(LEAD_IDS_MIME):
            event.ignore()
            return
        ids = bytes(event.mimeData().data(LEAD_IDS_MIME).data()).decode().split()
        event.acceptProposedAction()
        emit(self.leads_dropped, ids, agent.user_id)


class QueueHealth(QTableWidget):
    """Every unworked lead: breached and about-to-breach first, with countdowns."""

    HEADERS = ("Due", "Customer", "Source", "Agent", "Score")
    reassign_requested = Signal(list, object)  # lead ids, agent id (None: the pool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().hide()
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self._leads: tuple[QueueLead, ...] = ()
        self._agents: tuple[AgentOnFloor, ...] = ()
        self._menu_open: Callable[[QMenu], None] | None = None  # tests look at the menu

    @property
    def leads(self) -> tuple[QueueLead, ...]:
        return self._leads

    def show_queue(self, board: Board, now: datetime) -> None:
        selected = set(self.selected_ids())
        leads = board.queue_in_order(now)
        self._agents = board.agents
        if [q.lead_id for q in leads] != [q.lead_id for q in self._leads] or leads != self._leads:
            self._leads = leads
            self.setRowCount(len(leads))
            for row, lead in enumerate(leads):
                cells = (
                    _item("", align_right=True, data=lead.lead_id),
                    _item(lead.customer_name),
                    _item(lead.source),
                    _item(lead.agent_name or "Pool"),
                    _item(f"{lead.score} {lead.tier}", align_right=True),
                )
                for column, cell in enumerate(cells):
                    self.setItem(row, column, cell)
            self.clearSelection()
            for row, lead in enumerate(leads):
                if lead.lead_id in selected:
                    self.selectRow(row)
        self.tick(now)

    def tick(self, now: datetime) -> None:
        colors = current_colors()
        for row, lead in enumerate(self._leads):
            urgency = lead.urgency(now)
            due = self.item(row, 0)
            if due is None:
                continue
            due.setText(countdown_text(lead.seconds_left(now)))
            color = {"breached": colors.red, "at_risk": colors.orange}.get(urgency)
            background = {"breached": colors.banner_bad, "at_risk": colors.banner_warn}.get(urgency)
            for column in range(self.columnCount()):
                cell = self.item(row, column)
                if cell is None:
                    continue
                cell.setBackground(QBrush(QColor(background)) if background else QBrush())
                if column == 0:
                    cell.setForeground(QBrush(QColor(color)) if color else QBrush())

    def selected_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        return [self._leads[r].lead_id for r in rows if r < len(self._leads)]

    def select_ids(self, ids: Sequence[str]) -> None:
        self.clearSelection()
        wanted = set(ids)
        mode = self.selectionMode()
        self.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row, lead in enumerate(self._leads):
            if lead.lead_id in wanted:
                self.selectRow(row)
        self.setSelectionMode(mode)

    def mimeData(self, items: Sequence[QTableWidgetItem]) -> QMimeData:
        data = QMimeData()
        data.setData(LEAD_IDS_MIME, " ".join(self.selected_ids()).encode())
        return data

    def mimeTypes(self) -> list[str]:
        return [LEAD_IDS_MIME]

    def startDrag(self, supported: Qt.DropAction) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mimeData([]))
        drag.exec(Qt.DropAction.MoveAction)

    def build_menu(self) -> QMenu | None:
        ids = self.selected_ids()
        if not ids:
            return None
        menu = QMenu(self)
        label = "this lead" if len(ids) == 1 else f"these {len(ids)} leads"
        menu.setTitle(f"Reassign {label}")
        sub = menu.addMenu(f"Reassign {label} to")
        for agent in sorted(self._agents, key=lambda a: (not a.available, a.name)):
            state = STATE_LABELS.get(agent.state, agent.state).split(" ", 1)[-1]
            action = sub.addAction(f"{agent.name} — {state}")
            action.triggered.connect(
                lambda _checked=False, a=agent.user_id: emit(self.reassign_requested, ids, a)
            )
        available = [a for a in self._agents if a.available]
        if available:
            first = sorted(available, key=lambda a: a.calls)[0]
            action = menu.addAction(f"Give to {first.name} (available, fewest calls)")
            action.triggered.connect(
                lambda _checked=False, a=first.user_id: emit(self.reassign_requested, ids, a)
            )
        pool = menu.addAction("Return to the pool")
        pool.triggered.connect(lambda _checked=False: emit(self.reassign_requested, ids, None))
        return menu

    def _menu(self, pos: QPoint) -> None:
        menu = self.build_menu()
        if menu is None:
            return
        if self._menu_open is not None:
            self._menu_open(menu)
            return
        menu.popup(self.viewport().mapToGlobal(pos))
