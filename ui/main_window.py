"""The agent's main window: the work queue on the left, the lead workspace on the right.

Everything it shows arrives as frozen data from the injected `LeadSource`; everything the agent
does goes out through the injected `LeadActions` and the `app.telephony` dialer (see ui/ports.py).
Actions may be coroutines: they run on the asyncio loop (ui/asyncs.py) and their results update
the widgets when they arrive. Sync state, notices and queue changes come in through
`set_sync_state`, `show_notice` and `queue_changed` (wired by ui/live.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from html import escape
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.domain.dispositions import AfterEvent, Disposition, DispositionCatalog
from app.domain.errors import DomainError
from app.domain.leads import Channel
from app.domain.priority import WorkItem, WorkKind, countdown_text
from app.services.actions import ActionResult, DispositionResult
from app.services.workqueue import LeadDetail
from app.sync.engine import Connectivity, SyncStatus
from app.telephony.guard import guarded_dial
from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallEvent,
    CallRinging,
    Dialer,
    DialRequest,
)
from app.telephony.record import CallRecord
from ui import asyncs
from ui.composer import Composer
from ui.content import LeadContent
from ui.disposition_bar import UNDO_SECONDS, DispositionBar, PickTime, ScheduleDialog
from ui.notify import Notifier
from ui.ports import (
    Clock,
    LeadActions,
    LeadSource,
    Presence,
    PresenceState,
)
from ui.queue_model import COL_DUE, COL_NAME, COL_SOURCE, COL_TIER, COL_VEHICLE, QueueModel
from ui.signals import emit, keep_singletons_alive
from ui.status import Banner, PresenceControl, SyncStatusBar, elapsed_text
from ui.theme import current_colors
from ui.workspace import render_lead_html, render_script_html

log = logging.getLogger(__name__)

SETTLE_SECONDS = 1.5  # reorder only after the agent left the list alone this long
MAX_DEFER_SECONDS = 15.0  # ... or at the latest after this long
REFRESH_EVERY_TICKS = 2
# Once a minute the refresh compares every row, whatever was named (a safety net: ~12 ms at 50k).
COMPARE_ALL_EVERY_TICKS = 60
COMPLIANCE_EVERY_TICKS = 5
TAB_LEAD, TAB_SCRIPT, TAB_TEXT, TAB_EMAIL, TAB_NOTES = range(5)

SHORTCUTS: list[tuple[str, str]] = [
    ("Ctrl+Down / Ctrl+Up", "Next / previous work item"),
    ("Ctrl+F", "Search the queue (name, phone, vehicle); Esc returns to the queue"),
    ("Ctrl+D", "Call the customer"),
    ("Ctrl+E", "Hang up"),
    ("Ctrl+T", "Text: open the template picker"),
    ("Ctrl+Shift+E", "Email: open the template picker"),
    ("Ctrl+Enter", "Send the text / email, or save the note"),
    ("Ctrl+N", "Write a note"),
    ("Alt+1 … Alt+5", "Lead · Script · Text · Email · Notes tabs"),
    ("Ctrl+Z", "Undo the last disposition (for a few seconds)"),
    ("Ctrl+P", "Pause / resume"),
    ("F1", "This sheet"),
]


def number_of_link(link: str) -> str:
    """The number of a tel:/callto: link ("tel:+1-555-010-4477;ext=2" -> "5550104477": its
    last ten digits, how the queue's search finds a lead's phone); "" when it has none."""
    text = unquote(link.strip())
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("tel", "callto"):
        text = rest.lstrip("/")
    text = text.split(";", 1)[0].split("?", 1)[0].split("@", 1)[0]
    return "".join(ch for ch in text if ch.isdigit())[-10:]


def _local_clock(moment: datetime) -> str:
    return moment.strftime("%I:%M %p").lstrip("0")


class _Interaction(QObject):
    """Notes when the agent moves the mouse or scrolls over the queue."""

    def __init__(self, touched: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._touched = touched

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.MouseMove, QEvent.Type.Wheel, QEvent.Type.Enter):
            self._touched()
        return False


class MainWindow(QMainWindow):
    call_event = Signal(object)  # app.telephony CallEvent, delivered on the GUI thread
    sign_in_requested = Signal()  # the banner's "Sign in again…"
    settings_requested = Signal()  # File ▸ Settings (the composition root opens the dialog)
    disposition_logged = Signal(object)  # DispositionResult, once shown

    def __init__(
        self,
        source: LeadSource,
        actions: LeadActions,
        content: LeadContent,
        catalog: DispositionCatalog,
        clock: Clock,
        *,
        dialer: Dialer,
        store_zone: ZoneInfo,
        title: str,
        status_text: str = "",
        settings: QSettings | None = None,
        sounds: bool = False,
        pick_time: PickTime | None = None,
        sync_status: SyncStatus | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        agent_id: str | None = None,
        named_changes: bool = False,
    ) -> None:
        """`named_changes`: every change to `source` is told to `queue_changed(lead_ids)` (the
        core's `QueueService.on_changed`), so a refresh updates only those rows; else (the
        in-process preview) every refresh compares all rows."""
        super().__init__()
        self._source = source
        self._actions = actions
        self._content = content
        self._catalog = catalog
        self._clock = clock
        self._dialer = dialer
        self._store_zone = store_zone
        self._settings = settings
        self._pick_time = pick_time or self._ask_time
        self._agent_id = agent_id
        self._monotonic = monotonic
        self._colors = current_colors()
        self._ticks = 0
        self._last_touch = -1e9
        self._deferred_since: float | None = None
        self._detail: LeadDetail | None = None
        self._worked_channel: Channel | None = None
        self._call_started: datetime | None = None
        self._call_connected = False
        self._call_lead: str | None = None
        self._call_events: list[CallEvent] = []
        self._last_call_lead: str | None = None
        self.last_call: CallRecord | None = None  # the finished call the next disposition closes
        self._last_call_events: tuple[CallEvent, ...] = ()
        self._undo_leads: dict[str, str] = {}
        self._logging = False  # a disposition is on its way: the keys wait
        self._named_while_logging = False  # meanwhile the core named the selected lead
        # Leads the core re-derived since the rows last caught up (the next refresh's work).
        self._named_changes = named_changes
        self._changed: dict[str, None] = {}
        self.undo_window = timedelta(seconds=UNDO_SECONDS)  # the core holds it back this long
        self.setWindowTitle(title)

        # -- queue
        self.model = QueueModel(clock, self, monotonic=monotonic, colors=self._colors)
        self.table = QTableView()
        self.table.setObjectName("queue_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setMouseTracking(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(36)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {COL_DUE: 160, COL_NAME: 170, COL_VEHICLE: 200, COL_SOURCE: 105, COL_TIER: 95}
        for column, width in widths.items():
            self.table.setColumnWidth(column, width)
        self._interaction = _Interaction(self._touched, self)
        self.table.viewport().installEventFilter(self._interaction)
        self.model.item_arrived.connect(self._announce)

        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Search name, phone or vehicle  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._focus_queue)
        self.queue_hint = QLabel("▲ moved up · ★ new · ⚠ overdue — hover a row for why it is there")
        self.queue_hint.setStyleSheet(f"color:{self._colors.muted}")

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 0, 6)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.queue_hint)

        # -- workspace
        self.lead_name = QLabel()
        self.lead_name.setObjectName("lead_name")
        font = self.lead_name.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.lead_name.setFont(font)
        self.lead_summary = QLabel()
        self.lead_summary.setWordWrap(True)
        self.countdown = QLabel()
        self.countdown.setObjectName("lead_countdown")
        big = self.countdown.font()
        big.setPointSizeF(big.pointSizeF() * 2.2)
        big.setBold(True)
        self.countdown.setFont(big)
        self.countdown.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        head = QHBoxLayout()
        names = QVBoxLayout()
        names.addWidget(self.lead_name)
        names.addWidget(self.lead_summary)
        head.addLayout(names, 1)
        head.addWidget(self.countdown)

        self.call_button = QPushButton("☎  Call  (Ctrl+D)")
        self.call_button.setObjectName("call_button")
        self.call_button.setMinimumHeight(40)
        self.call_button.clicked.connect(self.dial)
        self.hang_up_button = QPushButton("Hang up  (Ctrl+E)")
        self.hang_up_button.setObjectName("hang_up_button")
        self.hang_up_button.setMinimumHeight(40)
        self.hang_up_button.setEnabled(False)
        self.hang_up_button.clicked.connect(self.hang_up)
        self.call_status = QLabel()
        self.call_status.setObjectName("call_status")
        self.call_status.setWordWrap(True)
        call_row = QHBoxLayout()
        call_row.addWidget(self.call_button)
        call_row.addWidget(self.hang_up_button)
        call_row.addWidget(self.call_status, 1)

        self.lead_card = QTextBrowser()
        self.lead_card.setObjectName("lead_card")
        self.lead_card.setOpenLinks(False)
        self.script = QTextBrowser()
        self.script.setObjectName("script_panel")
        self.text_composer = Composer(Channel.TEXT, actions, content, clock, colors=self._colors)
        self.email_composer = Composer(Channel.EMAIL, actions, content, clock, colors=self._colors)
        self.text_composer.sent.connect(lambda _r: self._after_send(Channel.TEXT))
        self.email_composer.sent.connect(lambda _r: self._after_send(Channel.EMAIL))
        self.notes = QPlainTextEdit()
        self.notes.setObjectName("notes_editor")
        self.notes.setPlaceholderText("Notes on this lead — saved to its timeline (Ctrl+Enter)")
        self.save_note_button = QPushButton("Save note  (Ctrl+Enter)")
        self.save_note_button.clicked.connect(self.save_note)
        self.note_status = QLabel()
        notes_page = QWidget()
        notes_layout = QVBoxLayout(notes_page)
        notes_layout.addWidget(self.notes, 1)
        notes_row = QHBoxLayout()
        notes_row.addWidget(self.note_status, 1)
        notes_row.addWidget(self.save_note_button)
        notes_layout.addLayout(notes_row)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("workspace_tabs")
        self.tabs.addTab(self.lead_card, "&1 Lead")
        self.tabs.addTab(self.script, "&2 Script")
        self.tabs.addTab(self.text_composer, "&3 Text")
        self.tabs.addTab(self.email_composer, "&4 Email")
        self.tabs.addTab(notes_page, "&5 Notes")

        self.disposition_bar = DispositionBar(catalog, self, colors=self._colors)
        self.disposition_bar.chosen.connect(self.log_disposition)
        self.disposition_bar.undo_requested.connect(self._undo)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        right_layout.addLayout(head)
        right_layout.addLayout(call_row)
        right_layout.addWidget(self.tabs, 1)
        right_layout.addWidget(self.disposition_bar)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([880, 620])

        self.banner = Banner(colors=self._colors)
        self.banner.sign_in_clicked.connect(self.sign_in_requested.emit)
        # What the agent should read once: session-only mode, refused actions, a lead that left.
        self.notice = QLabel()
        self.notice.setObjectName("notice_bar")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.RichText)
        self.notice.setStyleSheet(
            f"background:{self._colors.banner_warn};color:{self._colors.banner_text};"
            f"border:2px solid {self._colors.orange};padding:4px 8px"
        )
        self.notice.hide()
        self._notices: list[str] = []
        self._standing_notice = ""
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(self.notice)
        central_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        # -- status bar
        self.sync_status = SyncStatusBar(colors=self._colors)
        self.progress = QProgressBar()
        self.progress.setObjectName("sync_progress")
        self.progress.setTextVisible(True)
        # Wide enough for the longest text it shows (the status bar squeezed it to ~95 px).
        longest = "Reloading your queue… 888,888 of 888,888 leads"
        self.progress.setMinimumWidth(self.progress.fontMetrics().horizontalAdvance(longest) + 40)
        self.progress.hide()
        self.connection_label = QLabel(status_text)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("queue_counts")
        self.presence = PresenceControl(
            Presence(PresenceState.AVAILABLE, clock()), colors=self._colors
        )
        self.presence.changed.connect(self.set_presence)
        bar = self.statusBar()
        bar.addWidget(self.sync_status)
        bar.addWidget(self.progress)
        bar.addWidget(self.connection_label, 1)
        bar.addPermanentWidget(self.counts_label)
        bar.addPermanentWidget(self.presence)
        self.sync_view: SyncStatus | None = None
        self.set_sync_state(sync_status)

        self.notifier = Notifier(self, sounds=sounds)
        self._build_menus()
        self._build_shortcuts()

        self.call_event.connect(self._on_call_event)
        self._unsubscribe_dialer = dialer.subscribe(partial(emit, self.call_event))
        self.table.selectionModel().currentRowChanged.connect(self._show_current)

        # The one refresh timer: repaints countdowns every second, re-ranks every few seconds.
        self.countdown_timer = QTimer(self)
        self.countdown_timer.setObjectName("countdown_timer")
        self.countdown_timer.setInterval(1000)
        self.countdown_timer.timeout.connect(self._tick)
        self.countdown_timer.start()
        # PySide6 6.12 on Python 3.11 leaks references to None/True (ui/signals.py).
        self.singleton_top_up = keep_singletons_alive(self)

        self._show_all()
        self._update_counts()
        self._show_workspace(None)
        self._restore_layout()

    # ------------------------------------------------------------------ menus and keys

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Se&ttings…", self.settings_requested.emit)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&Keyboard shortcuts (F1)", self.show_shortcuts)
        help_menu.addAction("&About", self.show_about)

    def _build_shortcuts(self) -> None:
        def key(sequence: str | QKeySequence.StandardKey, slot: Callable[[], object]) -> None:
            shortcut = QShortcut(QKeySequence(sequence), self)
            shortcut.activated.connect(slot)

        key("Ctrl+Down", self.select_next)
        key("Ctrl+Up", self.select_previous)
        key(QKeySequence.StandardKey.Find, self.focus_search)
        key("Ctrl+D", self.dial)
        key("Ctrl+E", self.hang_up)
        key("Ctrl+T", lambda: self._open_composer(self.text_composer, TAB_TEXT))
        key("Ctrl+Shift+E", lambda: self._open_composer(self.email_composer, TAB_EMAIL))
        key("Ctrl+Return", self.send_current)
        key("Ctrl+Enter", self.send_current)
        key("Ctrl+N", self._open_notes)
        key("Ctrl+P", self.toggle_pause)
        key("F1", self.show_shortcuts)
        for number in range(5):
            key(f"Alt+{number + 1}", lambda n=number: self.tabs.setCurrentIndex(n))
        escape_search = QShortcut(QKeySequence("Escape"), self.search)
        escape_search.setContext(Qt.ShortcutContext.WidgetShortcut)
        escape_search.activated.connect(self._focus_queue)

    def shortcut_list(self) -> list[tuple[str, str]]:
        dispositions = [
            (d.hotkey, f"Log “{d.label}”" + (" (asks for a time)" if d.needs_time else ""))
            for d in self._catalog
            if d.hotkey
        ]
        return [*SHORTCUTS[:3], *SHORTCUTS[3:], *dispositions]

    # The dialogs are imported when first opened: not on the way to the first paint.

    def show_about(self) -> None:
        from ui.dialogs import AboutDialog

        AboutDialog(self).exec()

    def show_shortcuts(self) -> None:
        from ui.dialogs import ShortcutSheet

        self.shortcut_sheet = ShortcutSheet(self.shortcut_list(), self)
        self.shortcut_sheet.show()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def show_link(self, link: str) -> None:
        """A tel:/callto: link from the desktop: look its number up in the queue. Exactly one
        lead: select it (its workspace shows) and put the focus on the queue; otherwise the
        queue stays filtered by the number in the search box. Never dials: the agent does,
        and the calling rules are checked at that click. While the queue is still loading,
        the filter stays and the first load selects the one lead that matches."""
        number = number_of_link(link)
        if not number:
            return
        self.search.setText(number)  # re-filters (_search_changed)
        if self.model.rowCount() == 1:
            self._select_row(0)
            self.table.setFocus()
        else:
            self.search.setFocus()

    def bring_to_front(self) -> None:
        """Shown, un-minimized, raised and activated (another start handed over to us)."""
        if self.isMinimized():
            self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()

    def _focus_queue(self) -> None:
        self.table.setFocus()
        if not self.table.currentIndex().isValid():
            self.select_first()

    def _open_composer(self, composer: Composer, tab: int) -> None:
        self.tabs.setCurrentIndex(tab)
        composer.focus_picker()

    def _open_notes(self) -> None:
        self.tabs.setCurrentIndex(TAB_NOTES)
        self.notes.setFocus()

    def send_current(self) -> None:
        tab = self.tabs.currentIndex()
        if tab == TAB_TEXT:
            self.text_composer.send()
        elif tab == TAB_EMAIL:
            self.email_composer.send()
        elif tab == TAB_NOTES:
            self.save_note()

    # ------------------------------------------------------------------ data flow

    def _visible(self, now: datetime) -> tuple[list[WorkItem], list[tuple[Any, ...]]]:
        """The rows to show and their sort keys."""
        return self._source.ranked(now, search=self.search.text())

    def _show_all(self) -> None:
        """A different set of rows (start, a new search): the model is reset."""
        now = self._clock()
        items, keys = self._visible(now)
        self.model.set_items(items, keys, now=now)
        self._changed.clear()

    def _touched(self) -> None:
        self._last_touch = self._monotonic()

    def _settled(self) -> bool:
        now = self._monotonic()
        if now - self._last_touch >= SETTLE_SECONDS:
            return True
        return self._deferred_since is not None and now - self._deferred_since >= MAX_DEFER_SECONDS

    def refresh(self, *, force: bool = False, compare_all: bool = False) -> None:
        """Re-rank; apply a new order only once the agent left the list alone (or `force`).

        The rows of the leads the core named since the last refresh (`queue_changed`) are
        updated one by one (`QueueModel.update_leads`, O(changes · log n)); without those names
        (the in-process preview, the start-up load, the clock set back)
        or with `compare_all`, every row is compared."""
        now = self._clock()
        items, keys = self._visible(now)
        # Changes that keep the order apply at once; a new order waits until the agent settles.
        reorder = force or self._settled()
        applied: bool | None = None
        if self._named_changes and not compare_all and not self._source.loading:
            applied = self.model.update_leads(
                self._changed, items, keys, now, self._source.item_for, reorder=reorder
            )
        if applied is None:
            applied = self.model.update_items(items, keys, reorder=reorder, now=now)
        if applied:
            self._changed.clear()
            self._deferred_since = None
        elif self._deferred_since is None:
            self._deferred_since = self._monotonic()
        self._update_counts()
        if self.table.currentIndex().isValid() is False and self.model.rowCount():
            self.select_first()

    def _search_changed(self) -> None:
        current = self.current_item()
        self._show_all()
        self._update_counts()
        if current is not None:
            self._select_lead(current.lead_id)

    def _tick(self) -> None:
        self._ticks += 1
        self.model.tick()
        self._update_header_clock()
        self._update_call_timer()
        self.presence.show_presence(self.presence.presence, self._clock())
        if self._ticks % REFRESH_EVERY_TICKS == 0:
            self.refresh(compare_all=self._ticks % COMPARE_ALL_EVERY_TICKS == 0)
        if self._ticks % COMPLIANCE_EVERY_TICKS == 0:
            self.text_composer.refresh_compliance()
            self.email_composer.refresh_compliance()

    def _update_counts(self) -> None:
        rows = self.model.rowCount()
        overdue = self.model.overdue_count(self._clock())
        total = len(self._source)
        self.counts_label.setText(f"{rows} in queue · {overdue} overdue · {total} leads")

    def _announce(self, item: WorkItem) -> None:
        if item.kind is WorkKind.CUSTOMER_REPLY:
            self.notifier.notify(f"{item.name} replied", item.detail or item.action)
        elif item.tier == "hot":
            self.notifier.notify(
                f"New hot lead: {item.name}", f"{item.vehicle} · {item.source} · call now"
            )

    # ------------------------------------------------------------------ selection

    def current_item(self) -> WorkItem | None:
        index = self.table.currentIndex()
        return self.model.item_at(index.row()) if index.isValid() else None

    def select_first(self) -> None:
        if self.model.rowCount():
            self._select_row(0)

    def select_next(self) -> None:
        row = self.table.currentIndex().row()
        if row + 1 < self.model.rowCount():
            self._select_row(row + 1)

    def select_previous(self) -> None:
        row = self.table.currentIndex().row()
        if row > 0:
            self._select_row(row - 1)

    def _select_row(self, row: int) -> None:
        index = self.model.index(row, COL_NAME)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)

    def _select_lead(self, lead_id: str) -> bool:
        row = self.model.row_of(lead_id)
        if row >= 0:
            self._select_row(row)
        return row >= 0

    def _show_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._touched()
        item = self.model.item_at(current.row())
        self._show_workspace(item)

    def _show_workspace(self, item: WorkItem | None, *, keep_tab: bool = True) -> None:
        previous = self._detail.lead.id if self._detail else None
        if item is None:
            self._clear_workspace(
                "No lead selected", "Pick a row, or Ctrl+Down for the next work item."
            )
            return
        try:
            detail = self._source.detail(item.lead_id, self._clock())
        except Exception as exc:
            # Never leave the workspace (and its notes) showing another lead than the row.
            if not isinstance(exc, KeyError):
                log.exception("the workspace of lead %s could not be shown", item.lead_id)
            self._clear_workspace(
                escape(item.name),
                "This lead is no longer in your queue."
                if isinstance(exc, KeyError)
                else "This lead could not be shown.",
            )
            self._forget_notes()
            return
        self._detail = detail
        if previous != item.lead_id:
            self._forget_notes()
        self.lead_name.setText(escape(item.name))
        next_text = escape(detail.next_text) if detail.next_text else ""
        their = _local_clock(detail.customer_time)
        self.lead_summary.setText(
            f"<b>{escape(item.vehicle or 'No vehicle named')}</b> · {escape(item.source)} · "
            f"{item.tier.upper()} {item.grade} · their time {their}<br>"
            f"<b>Now:</b> "
            + (
                escape(item.detail)
                if item.detail.startswith(item.action)
                else escape(item.action) + (f" — {escape(item.detail)}" if item.detail else "")
            )
            + (f"<br><b>Cadence:</b> {next_text}" if next_text else "")
        )
        self.lead_card.setHtml(render_lead_html(detail, self._colors))
        try:
            self.script.setHtml(render_script_html(self._content.script_for(detail), self._colors))
        except DomainError as exc:
            self.script.setPlainText(f"No call script for this lead: {exc}")
        self.text_composer.set_lead(detail)
        self.email_composer.set_lead(detail)
        self.disposition_bar.set_enabled_for_lead(True)
        self.call_button.setEnabled(self._call_lead is None)
        self._update_header_clock()
        if not keep_tab:
            self.tabs.setCurrentIndex(TAB_LEAD)

    def _clear_workspace(self, title: str, summary: str) -> None:
        """No lead in the workspace: nothing to log, text or call."""
        self._detail = None
        self.lead_name.setText(title)
        self.lead_summary.setText(summary)
        self.lead_card.clear()
        self.script.clear()
        self.text_composer.set_lead(None)
        self.email_composer.set_lead(None)
        self.disposition_bar.set_enabled_for_lead(False)
        self.call_button.setEnabled(False)
        self.countdown.clear()

    def _forget_notes(self) -> None:
        """Another lead (or none) in the workspace: the last one's notes are not its."""
        self._worked_channel = None
        self.notes.clear()
        self.note_status.clear()
        if self._call_lead is None:
            self.call_status.clear()

    def _update_header_clock(self) -> None:
        item = self.current_item()
        if item is None:
            self.countdown.clear()
            return
        text = countdown_text(item.due_at, self._clock())
        if text.startswith("+"):
            self.countdown.setText(f"⚠ {text[1:]} overdue")
            color = self._colors.red
        else:
            self.countdown.setText(f"{text} left")
            left = (item.due_at - self._clock()).total_seconds()
            color = self._colors.orange if left <= 120 else self._colors.green
        self.countdown.setStyleSheet(f"color:{color}")

    # ------------------------------------------------------------------ calls

    def dial(self) -> None:
        item = self.current_item()
        detail = self._detail
        if item is None or detail is None or self._call_lead is not None:
            return
        decision = self._actions.check_contact(item.lead_id, Channel.CALL)
        if not decision.allowed or decision.address is None:
            self.call_status.setText(
                f"<span style='color:{self._colors.red}'><b>✖ Not calling:</b> "
                f"{escape(decision.message)}</span>"
            )
            return
        request = DialRequest(
            number=decision.address,
            lead_id=item.lead_id,
            agent_id=self._agent_id,
            display_name=item.name,
        )
        self._worked_channel = Channel.CALL
        self._call_lead = item.lead_id
        self._call_started = self._clock()
        self._call_connected = False
        self._call_events = []
        self.call_button.setEnabled(False)
        self.hang_up_button.setEnabled(True)
        self.set_presence(Presence(PresenceState.ON_CALL, self._clock()))
        asyncs.run(guarded_dial(self._dialer, request, decision), None, self._dial_failed)

    def _dial_failed(self, error: BaseException) -> None:
        self._call_lead = None
        self._call_started = None
        self.hang_up_button.setEnabled(False)
        self.call_button.setEnabled(self._detail is not None)
        self.set_presence(Presence(PresenceState.AVAILABLE, self._clock()))
        self.call_status.setText(
            f"<span style='color:{self._colors.red}'><b>✖ Not dialed:</b> "
            f"{escape(str(error))}</span>"
        )

    def hang_up(self) -> None:
        if self._call_lead is not None:
            asyncs.run(self._dialer.hang_up())

    def _on_call_event(self, event: CallEvent) -> None:
        if self._call_lead is None:
            return
        self._call_events.append(event)
        if isinstance(event, CallDialing):
            self._call_status_text("Dialing", f"{event.number} ({event.backend})")
            return
        if isinstance(event, CallRinging):
            self._call_status_text("Ringing", "")
            return
        if isinstance(event, CallAnswered):
            self._call_connected = True
            self._call_status_text("On call", "answered")
            return
        if not isinstance(event, CallEnded):
            return
        lead_id = self._call_lead
        self._last_call_events = tuple(self._call_events)
        self.last_call = CallRecord.from_events(self._last_call_events)
        self._last_call_lead = lead_id
        self._call_lead = None
        self._call_started = None
        self.hang_up_button.setEnabled(False)
        self.call_button.setEnabled(self._detail is not None)
        self.set_presence(Presence(PresenceState.WRAP_UP, self._clock()))
        outcome = self.last_call.after_event
        likely = self._catalog.likely_after(outcome) if outcome else None
        talk = elapsed_text(self.last_call.duration_s)
        what = event.cause.label + (f" ({event.detail})" if event.detail else "")
        answered = f" after {talk} talk" if event.answered else ""
        self.call_status.setText(f"Call {escape(what)}{answered}. Log the outcome.")
        self.disposition_bar.mark_likely(likely.code if likely else None)

    def _call_status_text(self, phase: str, message: str) -> None:
        seconds = (self._clock() - self._call_started).total_seconds() if self._call_started else 0
        color = self._colors.blue
        self.call_status.setText(
            f"<b style='color:{color}'>☎ {phase} {elapsed_text(seconds)}</b> {escape(message)}"
        )

    def _update_call_timer(self) -> None:
        if self._call_lead is not None and self._call_started is not None:
            phase = "On call" if self._call_connected else "Calling"
            self._call_status_text(phase, "")

    # ------------------------------------------------------------------ actions

    def _ask_time(
        self, disposition: Disposition, name: str, zone: ZoneInfo, now: datetime
    ) -> datetime | None:
        dialog = ScheduleDialog(disposition, name, zone, self._store_zone, now, self)
        return dialog.chosen() if dialog.exec() else None

    def log_disposition(self, code: str) -> None:
        item = self.current_item()
        detail = self._detail
        if item is None or detail is None or self._logging or detail.lead.id != item.lead_id:
            return  # (the workspace shows the selected row's lead, or none)
        disposition = self._catalog.get(code)
        if self._call_lead == item.lead_id:
            self.hang_up()
        now = self._clock()
        scheduled = None
        if disposition.needs_time:
            scheduled = self._pick_time(disposition, item.name, detail.zone.primary_zone, now)
            if scheduled is None:
                return
        call = None
        if (
            self.last_call is not None
            and self._last_call_lead == item.lead_id
            # The lead API writes the CALL activity itself for server-side calls.
            and not self._dialer.records_calls
        ):
            # A hand-off call ends at the disposition; whether anyone answered, it says.
            call = CallRecord.from_events(
                self._last_call_events, ended_at=now, disposition_flags=disposition.flags
            )
        channel = (
            disposition.channel
            or (Channel.CALL if call else None)
            or self._worked_channel
            or item.channel
            or Channel.CALL
        )
        self._logging = True
        self._named_while_logging = False
        try:
            pending = self._actions.log_disposition(
                item.lead_id,
                code,
                scheduled_for=scheduled,
                note=self.notes.toPlainText().strip(),
                call=call,
                undo_window=self.undo_window,
                channel=channel,
            )
        except DomainError as exc:
            self._logging = False
            self.disposition_bar.show_error(str(exc))
            if self._named_while_logging:
                self.refresh()
                self._reshow_named()
            return
        asyncs.run(
            pending,
            lambda result: self._disposition_logged(item, result),
            self._disposition_failed,
        )

    def _disposition_failed(self, error: BaseException) -> None:
        self._logging = False
        self.disposition_bar.show_error(f"Not logged: {error}")
        self.refresh()  # whatever the core changed meanwhile
        self._reshow_named()

    def _reshow_named(self) -> None:
        """After a disposition that was not logged: the workspace of the selected lead again,
        if the core changed that lead meanwhile (`queue_changed` skipped it then)."""
        named, self._named_while_logging = self._named_while_logging, False
        current = self.current_item()
        if named and current is not None and self._call_lead is None:
            self._show_workspace(current)

    def _disposition_logged(self, item: WorkItem, result: DispositionResult) -> None:
        self._logging = False
        if not result.ok:
            self.disposition_bar.show_error(result.message)
            self.refresh()
            self._reshow_named()
            return
        self.last_call = None
        self._last_call_events = ()
        self.notes.clear()
        if self.presence.presence.state is PresenceState.WRAP_UP:
            self.set_presence(Presence(PresenceState.AVAILABLE, self._clock()))
        self.refresh(force=True)
        self._select_next_after(item.lead_id)
        if result.undo_token:
            self._undo_leads[result.undo_token] = item.lead_id
        self.disposition_bar.show_result(item.name, result)
        emit(self.disposition_logged, result)

    def _select_next_after(self, lead_id: str) -> None:
        for row in range(self.model.rowCount()):
            candidate = self.model.item_at(row)
            if candidate is not None and candidate.lead_id != lead_id:
                self._select_row(row)
                self.tabs.setCurrentIndex(TAB_LEAD)
                return
        self._show_workspace(None)

    def _undo(self, token: str) -> None:
        asyncs.run(
            self._actions.undo_disposition(token),
            lambda result: self._undone(token, result),
            lambda error: self.disposition_bar.show_error(f"Could not undo: {error}"),
        )

    def _undone(self, token: str, result: ActionResult) -> None:
        lead_id = self._undo_leads.pop(token, None)
        if not result.ok:
            self.disposition_bar.show_error("Too late to undo: it was already sent.")
            return
        self.refresh(force=True)
        self.disposition_bar.result.setText("↶ Undone — the lead is back as it was.")
        if lead_id is not None:
            self._select_lead(lead_id)

    def _after_send(self, channel: Channel) -> None:
        self._worked_channel = channel
        item = self.current_item()
        if item is not None:
            self._show_workspace(item)
        event = AfterEvent.TEXT_SENT if channel is Channel.TEXT else AfterEvent.EMAIL_SENT
        likely = self._catalog.likely_after(event)
        self.disposition_bar.mark_likely(likely.code if likely else None)

    def save_note(self) -> None:
        item = self.current_item()
        text = self.notes.toPlainText()
        if item is None:
            return
        self.save_note_button.setEnabled(False)
        asyncs.run(
            self._actions.add_note(item.lead_id, text),
            lambda result: self._note_saved(item, result),
            lambda error: self._note_saved(item, ActionResult(False, str(error))),
        )

    def _note_saved(self, item: WorkItem, result: ActionResult) -> None:
        self.save_note_button.setEnabled(True)
        mark = "✔" if result.ok else "✖"
        self.note_status.setText(f"{mark} {result.message}")
        if result.ok:
            self.notes.clear()
            current = self.current_item()
            if current is not None and current.lead_id == item.lead_id:
                self._show_workspace(current)

    # ------------------------------------------------------------------ presence and sync

    def set_presence(self, presence: Presence) -> None:
        presence = Presence(presence.state, self._clock(), presence.reason)
        reason = presence.reason.lower() if presence.state is PresenceState.PAUSED else None
        lead_id = self._call_lead if presence.state is PresenceState.ON_CALL else None
        self.presence.show_presence(presence, self._clock())
        asyncs.run(self._actions.set_presence(presence.state, reason=reason, lead_id=lead_id))

    def toggle_pause(self) -> None:
        if self.presence.presence.state is PresenceState.PAUSED:
            self.set_presence(Presence(PresenceState.AVAILABLE, self._clock()))
        else:
            self.set_presence(Presence(PresenceState.PAUSED, self._clock(), "Break"))

    @property
    def first_load(self) -> bool:
        """The queue's first download is under way (nothing it brings is "new")."""
        view = self.sync_view
        return view is not None and view.last_sync is None

    def set_sync_state(self, status: SyncStatus | None) -> None:
        """Where app.sync's status lands (a listener on the asyncio loop = the Qt thread).
        None: the in-process preview, no lead API."""
        was_loading = self.sync_view is not None and self.sync_view.last_sync is None
        self.sync_view = status
        if was_loading and status is not None and status.last_sync is not None:
            self._reload_quietly()
        self.sync_status.show_state(status)
        self.banner.show_state(status)
        loading = status is not None and (
            status.snapshot_loaded is not None
            or (status.connectivity is Connectivity.SYNCING and status.last_sync is None)
        )
        if loading and status is not None:
            verb = "Loading" if status.last_sync is None else "Reloading"
            loaded, total = status.snapshot_loaded, status.snapshot_total
            if loaded is not None and total:
                self.progress.setRange(0, total)
                self.progress.setValue(min(loaded, total))
                self.progress.setFormat(f"{verb} your queue… {loaded:,} of {total:,} leads")
            elif loaded:
                self.progress.setRange(0, 0)
                self.progress.setFormat(f"{verb} your queue… {loaded:,} leads")
            else:
                self.progress.setRange(0, 0)  # busy: nothing counted yet
                self.progress.setFormat(f"{verb} your queue…")
            self.progress.show()
        else:
            self.progress.hide()

    def set_standing_notice(self, html: str) -> None:
        """A message that stays (e.g. session-only mode)."""
        self._standing_notice = html
        self._show_notices()

    def show_notice(self, text: str) -> None:
        """Something the agent should read once (the newest three stay until dismissed)."""
        shown = escape(text)
        self._notices = [*self._notices[-2:], shown]
        self._show_notices()
        QTimer.singleShot(30_000, lambda: self._expire_notice(shown))

    def _expire_notice(self, text: str) -> None:
        if text in self._notices:
            self._notices.remove(text)
            self._show_notices()

    def _show_notices(self) -> None:
        lines = ([self._standing_notice] if self._standing_notice else []) + [
            f"<b>›</b> {n}" for n in self._notices
        ]
        self.notice.setText("<br>".join(lines))
        self.notice.setVisible(bool(lines))

    def _reload_quietly(self) -> None:
        """Show the queue as it is, without flashing or announcing anything as new."""
        current = self.current_item()
        now = self._clock()
        items, keys = self._visible(now)
        if keys is None:
            self.model.set_items(items)
        else:  # rows move in place: no reset per page of the first download
            self.model.update_items(items, keys, announce=False, marks=False, now=now)
        self._changed.clear()
        self._update_counts()
        if current is not None:
            self._select_lead(current.lead_id)
        elif self.model.rowCount():
            self.select_first()

    def queue_changed(self, lead_ids: tuple[str, ...]) -> None:
        """The core re-derived these leads (sync or an action): re-rank, refresh the open lead.
        During the first download, and while the start-up derives the leads behind the cached
        rows, the rows change without the "new lead" flash or "moved up" marks."""
        self._changed.update(dict.fromkeys(lead_ids))
        if self.first_load or self._source.loading:
            self._reload_quietly()
            return
        if self._logging:
            # a disposition is on its way: its result refreshes once and picks the next (or,
            # not logged, shows the selected lead again if it was named)
            current = self.current_item()
            if current is not None and current.lead_id in lead_ids:
                self._named_while_logging = True
            return
        self.refresh()
        current = self.current_item()
        if current is not None and current.lead_id in lead_ids and self._call_lead is None:
            self._show_workspace(current)

    # ------------------------------------------------------------------ layout persistence

    def _restore_layout(self) -> None:
        settings = self._settings
        if settings is None:
            return
        for key, restore in (
            ("window/geometry", self.restoreGeometry),
            ("window/state", self.restoreState),
            ("window/splitter", self.splitter.restoreState),
            ("queue/header", self.table.horizontalHeader().restoreState),
        ):
            value = settings.value(key)
            if value is not None:
                restore(value)

    def save_layout(self) -> None:
        settings = self._settings
        if settings is None:
            return
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/splitter", self.splitter.saveState())
        settings.setValue("queue/header", self.table.horizontalHeader().saveState())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_layout()
        self.countdown_timer.stop()
        self._unsubscribe_dialer()
        super().closeEvent(event)
