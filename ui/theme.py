"""Light and dark palettes that follow the OS, and the few status colors the UI uses.

Colors never carry meaning alone: every colored text also has words or a symbol (✔ ✖ ▲ ● ⚠).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette

THEMES = ("system", "light", "dark")


@dataclass(frozen=True, slots=True)
class Colors:
    dark: bool
    red: str
    orange: str
    green: str
    blue: str
    muted: str
    flash: str  # background of a new lead while it flashes
    moved: str  # background of a row that moved up
    banner_bad: str
    banner_warn: str
    banner_text: str


LIGHT = Colors(
    dark=False,
    red="#c62828",
    orange="#e65100",
    green="#2e7d32",
    blue="#1565c0",
    muted="#555555",
    flash="#fff59d",
    moved="#e3f2fd",
    banner_bad="#ffebee",
    banner_warn="#fff3e0",
    banner_text="#212121",
)
DARK = Colors(
    dark=True,
    red="#ff6b6b",
    orange="#ffb74d",
    green="#81c784",
    blue="#64b5f6",
    muted="#b0b0b0",
    flash="#6d5f00",
    moved="#123a5c",
    banner_bad="#4a1c1c",
    banner_warn="#4a3510",
    banner_text="#f5f5f5",
)


def apply_theme(choice: str) -> None:
    """Follow the OS (system) or force light/dark, through Qt's color scheme hint."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return
    hints = app.styleHints()
    scheme = {
        "light": Qt.ColorScheme.Light,
        "dark": Qt.ColorScheme.Dark,
    }.get(choice, Qt.ColorScheme.Unknown)
    hints.setColorScheme(scheme)


def current_colors() -> Colors:
    """The colors for the palette in effect now (dark when the window color is dark)."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return LIGHT
    if app.styleHints().colorScheme() == Qt.ColorScheme.Dark:
        return DARK
    window = app.palette().color(QPalette.ColorRole.Window)
    return DARK if window.lightness() < 128 else LIGHT
