"""The status bar's pieces and the offline banner: connectivity, pending changes, last sync,
and the agent's state with pause reason and a running timer."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.sync.engine import Connectivity, SyncStatus
from ui.ports import PAUSE_REASONS, Presence, PresenceState
from ui.signals import emit
from ui.theme import Colors, current_colors

_CONNECTIVITY = {
    Connectivity.ONLINE: ("● Online", "green"),
    Connectivity.SYNCING: ("⟳ Syncing…", "blue"),
    Connectivity.OFFLINE: ("✖ Offline", "red"),
    Connectivity.SIGN_IN_EXPIRED: ("⚠ Sign-in expired", "orange"),
}
_LOCAL = ("● Local preview data", "blue")  # no lead API (the in-process preview)
_PRESENCE = {
    PresenceState.AVAILABLE: ("● Available", "green"),
    PresenceState.ON_CALL: ("☎ On call", "blue"),
    PresenceState.WRAP_UP: ("✎ Wrap-up", "orange"),
    PresenceState.PAUSED: ("⏸ Paused", "red"),
}


def elapsed_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _clock_text(moment: datetime) -> str:
    return moment.astimezone().strftime("%I:%M %p").lstrip("0")


class SyncStatusBar(QWidget):
    """'● Online · 3 changes waiting · synced 4:02 PM' in the status bar."""

    def __init__(self, parent: QWidget | None = None, *, colors: Colors | None = None) -> None:
        super().__init__(parent)
        self._colors = colors or current_colors()
        self.connectivity = QLabel()
        self.connectivity.setObjectName("connectivity")
        self.pending = QLabel()
        self.pending.setObjectName("pending_changes")
        self.last_sync = QLabel()
        self.last_sync.setObjectName("last_sync")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label in (self.connectivity, self.pending, self.last_sync):
            layout.addWidget(label)

    def show_state(self, view: SyncStatus | None) -> None:
        text, color = _LOCAL if view is None else _CONNECTIVITY[view.connectivity]
        if view is not None and view.connectivity is Connectivity.ONLINE and not view.live:
            text += " (polling)"
        self.connectivity.setText(f"<b style='color:{getattr(self._colors, color)}'>{text}</b>")
        self.connectivity.setToolTip((view.last_error if view else "") or text)
        if view is None:
            self.pending.clear()
            self.pending.hide()
            self.last_sync.clear()
            return
        if view.failed:
            noun = "action" if view.failed == 1 else "actions"
            self.connectivity.setText(
                self.connectivity.text()
                + f" <b style='color:{self._colors.red}'>· {view.failed} {noun} refused</b>"
            )
        if view.pending:
            noun = "change" if view.pending == 1 else "changes"
            self.pending.setText(f"· {view.pending} {noun} waiting to sync")
            self.pending.show()
        else:
            self.pending.clear()
            self.pending.hide()
        if view.last_sync is not None:
            self.last_sync.setText(f"· synced {_clock_text(view.last_sync)}")
        else:
            self.last_sync.setText("· not synced yet")


class Banner(QFrame):
    """The band across the top when offline or signed out; hidden when all is well."""

    sign_in_clicked = Signal()

    def __init__(self, parent: QWidget | None = None, *, colors: Colors | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connection_banner")
        self._colors = colors or current_colors()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.sign_in = QPushButton("Sign in again…")
        self.sign_in.clicked.connect(self.sign_in_clicked.emit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.sign_in)
        self.hide()

    def show_state(self, view: SyncStatus | None) -> None:
        c = self._colors
        if view is None:
            self.hide()
            return
        waiting = ""
        if view.pending:
            noun = "change" if view.pending == 1 else "changes"
            waiting = f" {view.pending} {noun} will sync when the connection returns."
        if view.connectivity is Connectivity.OFFLINE:
            error = f" ({view.last_error})" if view.last_error else ""
            self.label.setText(
                f"✖ <b>Offline</b> — keep working: everything you do is saved on this PC."
                f"{waiting}{error}"
            )
            self._paint(c.banner_bad, c.red)
            self.sign_in.hide()
            self.show()
        elif view.connectivity is Connectivity.SIGN_IN_EXPIRED:
            self.label.setText(
                f"⚠ <b>Sign-in expired</b> — your work is saved on this PC.{waiting}"
            )
            self._paint(c.banner_warn, c.orange)
            self.sign_in.show()
            self.show()
        else:
            self.hide()

    def _paint(self, background: str, border: str) -> None:
        self.setStyleSheet(
            f"#connection_banner {{ background:{background}; border:2px solid {border}; }}"
            f"#connection_banner QLabel {{ color:{self._colors.banner_text}; }}"
        )


class PresenceControl(QWidget):
    """The agent's state: a picker (Available / Paused with a reason) and how long in it."""

    changed = Signal(object)  # Presence, when the agent picks a new state

    def __init__(self, presence: Presence, parent: QWidget | None = None, *, colors=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self._colors = colors or current_colors()
        self.presence = presence
        self.picker = QComboBox()
        self.picker.setObjectName("presence_picker")
        self.picker.addItem("Available")
        for reason in PAUSE_REASONS:
            self.picker.addItem(f"Paused — {reason}")
        self.picker.setToolTip("Your state (Ctrl+P pauses / resumes)")
        self.picker.activated.connect(self._picked)
        self.label = QLabel()
        self.label.setObjectName("presence_label")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.picker)

    def _picked(self, index: int) -> None:
        if index == 0:
            emit(self.changed, Presence(PresenceState.AVAILABLE, self.presence.since))
        else:
            reason = PAUSE_REASONS[index - 1]
            emit(self.changed, Presence(PresenceState.PAUSED, self.presence.since, reason))

    def show_presence(self, presence: Presence, now: datetime) -> None:
        self.presence = presence
        text, color = _PRESENCE[presence.state]
        if presence.reason:
            text += f": {presence.reason}"
        elapsed = elapsed_text((now - presence.since).total_seconds())
        self.label.setText(f"<b style='color:{getattr(self._colors, color)}'>{text}</b> {elapsed}")
        index = 0
        if presence.state is PresenceState.PAUSED and presence.reason in PAUSE_REASONS:
            index = PAUSE_REASONS.index(presence.reason) + 1
        self.picker.blockSignals(True)
        self.picker.setCurrentIndex(index)
        self.picker.blockSignals(False)
