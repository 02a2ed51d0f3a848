"""Desktop notification and an optional sound for a new hot lead or a customer reply.

QtMultimedia is optional (it fails to import without libpulse): without it, a system beep.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle, QSystemTrayIcon, QWidget


def _sound_effect(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None or not path.exists():
        return None
    try:
        from PySide6.QtCore import QUrl
        from PySide6.QtMultimedia import QSoundEffect
    except ImportError:
        return None
    effect = QSoundEffect()
    effect.setSource(QUrl.fromLocalFile(str(path)))
    return effect


class Notifier:
    def __init__(
        self, window: QWidget, *, sounds: bool = True, sound_file: Path | None = None
    ) -> None:
        self.sounds = sounds
        self.enabled = True  # desktop notifications (app.settings "notifications")
        self.shown: list[tuple[str, str]] = []  # what was announced, newest last
        self._tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            icon = window.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
            self._tray = QSystemTrayIcon(QIcon(icon), window)
            self._tray.setToolTip("BDC Workstation")
            self._tray.show()
        self._effect = _sound_effect(sound_file) if sounds else None

    @property
    def has_tray(self) -> bool:
        return self._tray is not None

    def notify(self, title: str, message: str) -> None:
        self.shown.append((title, message))
        if self.enabled and self._tray is not None and self._tray.supportsMessages():
            self._tray.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, 8000)
        if self.sounds:
            if self._effect is not None:
                self._effect.play()
            else:
                QApplication.beep()
