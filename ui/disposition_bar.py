"""The disposition bar: one button per outcome with its hotkey, the likely one marked, Undo.

The bar only shows and asks; the main window logs through `LeadActions.log_disposition` and hands
the frozen result back with `show_result`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from PySide6.QtCore import QDate, QDateTime, QTime, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.domain.dispositions import Disposition, DispositionCatalog
from app.services.actions import DispositionResult
from ui.signals import emit
from ui.theme import Colors, current_colors

UNDO_SECONDS = 8
COLUMNS = 4


class DispositionBar(QFrame):
    chosen = Signal(str)  # disposition code
    undo_requested = Signal(str)  # undo token

    def __init__(
        self,
        catalog: DispositionCatalog,
        shortcut_parent: QWidget,
        parent: QWidget | None = None,
        *,
        colors: Colors | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("disposition_bar")
        self._colors = colors or current_colors()
        self.catalog = catalog
        self.buttons: dict[str, QPushButton] = {}
        self.shortcuts: dict[str, QShortcut] = {}
        self.likely: str | None = None
        self._undo_token: str | None = None
        self._undo_left = 0
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self.title = QLabel("<b>Outcome</b> — one click or its key logs it")
        grid = QGridLayout()
        grid.setSpacing(4)
        for position, disposition in enumerate(catalog):
            key = disposition.hotkey or ""
            button = QPushButton(_button_text(disposition))
            button.setObjectName(f"disposition_{disposition.code}")
            button.setToolTip(
                f"{disposition.label} ({key or 'no key'})"
                + (f": {disposition.description}" if disposition.description else "")
                + (" — asks for a date and time" if disposition.needs_time else "")
            )
            button.setMinimumHeight(44)
            # Let the bar shrink beside a wide queue; the two-line labels fit ~135 px.
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            button.setMinimumWidth(135)
            button.clicked.connect(lambda _=False, code=disposition.code: emit(self.chosen, code))
            grid.addWidget(button, position // COLUMNS, position % COLUMNS)
            self.buttons[disposition.code] = button
            if disposition.hotkey:
                shortcut = QShortcut(QKeySequence(disposition.hotkey), shortcut_parent)
                shortcut.activated.connect(lambda code=disposition.code: emit(self.chosen, code))
                self.shortcuts[disposition.code] = shortcut

        self.result = QLabel()
        self.result.setObjectName("disposition_result")
        self.result.setWordWrap(True)
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.undo_button.setObjectName("undo_disposition")
        self.undo_button.hide()
        self.undo_button.clicked.connect(self.undo)
        undo_shortcut = QShortcut(QKeySequence("Ctrl+Z"), shortcut_parent)
        undo_shortcut.activated.connect(self.undo)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result, 1)
        result_row.addWidget(self.undo_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.title)
        layout.addLayout(grid)
        layout.addLayout(result_row)

        self._undo_timer = QTimer(self)
        self._undo_timer.setInterval(1000)
        self._undo_timer.timeout.connect(self._undo_tick)

    def set_enabled_for_lead(self, has_lead: bool) -> None:
        for button in self.buttons.values():
            button.setEnabled(has_lead)

    def mark_likely(self, code: str | None) -> None:
        """Bring the bar forward after a call, with the likely outcome marked and focused."""
        if self.likely and self.likely in self.buttons:
            self.buttons[self.likely].setStyleSheet("")
            self._set_label(self.likely, likely=False)
        self.likely = code
        if code is None or code not in self.buttons:
            self.setStyleSheet("")
            return
        self.setStyleSheet(f"#disposition_bar {{ border: 3px solid {self._colors.orange}; }}")
        button = self.buttons[code]
        button.setStyleSheet(f"font-weight:bold; border:3px solid {self._colors.orange};")
        self._set_label(code, likely=True)
        button.setFocus()
        self.title.setText(
            "<b>Log the outcome</b> — likely: "
            f"<b>{self.catalog.get(code).label}</b> (Enter or its key)"
        )

    def _set_label(self, code: str, *, likely: bool) -> None:
        disposition = self.catalog.get(code)
        self.buttons[code].setText(_button_text(disposition, likely=likely))

    def clear_likely(self) -> None:
        self.mark_likely(None)
        self.title.setText("<b>Outcome</b> — one click or its key logs it")

    def show_result(self, name: str, result: DispositionResult) -> None:
        self.clear_likely()
        self.result.setText(
            f"<span style='color:{self._colors.green}'>✔</span> <b>{result.label}</b> logged "
            f"for {name} · <b>Next:</b> {result.next_text}"
        )
        self._undo_token = result.undo_token
        if result.undo_token:
            self._undo_left = UNDO_SECONDS
            self._undo_tick(start=True)
            self._undo_timer.start()

    def show_error(self, message: str) -> None:
        self.result.setText(f"<span style='color:{self._colors.red}'>✖ {message}</span>")

    def _undo_tick(self, *, start: bool = False) -> None:
        if not start:
            self._undo_left -= 1
        if self._undo_left <= 0 or self._undo_token is None:
            self._undo_timer.stop()
            self.undo_button.hide()
            self._undo_token = None
            return
        self.undo_button.setText(f"Undo (Ctrl+Z) · {self._undo_left} s")
        self.undo_button.show()

    def undo(self) -> None:
        token = self._undo_token
        if token is None:
            return
        self._undo_token = None
        self._undo_timer.stop()
        self.undo_button.hide()
        emit(self.undo_requested, token)


def _button_text(disposition: Disposition, *, likely: bool = False) -> str:
    """Two short lines, so the bar fits beside the queue: 'F7 · Contacted –' + 'callback'."""
    label = disposition.label
    words = label.split(" ")
    key = disposition.hotkey or ""
    if len(key) + len(label) > 16 and len(words) > 1:
        best = min(
            range(1, len(words)),
            key=lambda i: abs(len(key) + len(" ".join(words[:i])) - len(" ".join(words[i:]))),
        )
        label = " ".join(words[:best]) + "\n" + " ".join(words[best:])
    first, _, rest = label.partition("\n")
    head = f"◆ {key} · {first}" if likely else f"{key} · {first}" if key else first
    return f"{head}\n{rest}" if rest else head


# --------------------------------------------------------------------------- date-time picker


def default_slot(now: datetime, zone: ZoneInfo) -> datetime:
    """The next half hour at least 30 minutes out, between 9:00 and 19:00 their time."""
    local = (now + timedelta(minutes=30)).astimezone(zone)
    local = local.replace(second=0, microsecond=0)
    minute = 30 if local.minute <= 30 else 60
    local = local.replace(minute=0) + timedelta(minutes=minute)
    if local.hour < 9:
        local = local.replace(hour=9, minute=0)
    elif local.hour >= 19:
        local = (local + timedelta(days=1)).replace(hour=9, minute=0)
    return local


class ScheduleDialog(QDialog):
    """Pick a callback or appointment time in the customer's zone, with the store's time too."""

    def __init__(
        self,
        disposition: Disposition,
        customer_name: str,
        customer_zone: ZoneInfo,
        store_zone: ZoneInfo,
        now: datetime,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{disposition.label} — {customer_name}")
        self._customer_zone = customer_zone
        self._store_zone = store_zone
        self._now = now
        start = default_slot(now, customer_zone)
        self.edit = QDateTimeEdit()
        self.edit.setCalendarPopup(True)
        self.edit.setDisplayFormat("ddd MMM d yyyy  h:mm AP")
        self.edit.setDateTime(_qt(start))
        local_now = now.astimezone(customer_zone)
        self.edit.setMinimumDateTime(_qt(local_now))
        self.edit.dateTimeChanged.connect(self._update)
        self.store_time = QLabel()
        self.store_time.setObjectName("store_time")
        self.hint = QLabel(
            f"Their time zone: <b>{customer_zone.key}</b> — now {local_now:%I:%M %p}".replace(
                " 0", " "
            )
        )
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{disposition.label}</b> for {customer_name}, their time:"))
        layout.addWidget(self.edit)
        layout.addWidget(self.hint)
        layout.addWidget(self.store_time)
        layout.addWidget(buttons)
        self._update()

    def chosen(self) -> datetime:
        value = self.edit.dateTime().toPython()
        assert isinstance(value, datetime)
        return value.replace(tzinfo=self._customer_zone, second=0, microsecond=0)

    def _update(self) -> None:
        store = self.chosen().astimezone(self._store_zone)
        text = store.strftime("%a %b %d, %I:%M %p").replace(" 0", " ")
        self.store_time.setText(f"Store time: <b>{text}</b> ({self._store_zone.key})")


def _qt(moment: datetime) -> QDateTime:
    return QDateTime(
        QDate(moment.year, moment.month, moment.day), QTime(moment.hour, moment.minute)
    )


PickTime = Callable[[Disposition, str, ZoneInfo, datetime], datetime | None]
