"""Sign-in, first-run settings, About, and the F1 shortcut sheet."""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from importlib import metadata

import PySide6
from PySide6.QtCore import QSettings, Qt, qVersion
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.ports import SignIn, SignInRequest, SignInResult
from ui.theme import THEMES

DIALERS = (("tel", "Phone program (tel: links)"), ("simulated", "Simulated (demo)"))


class SignInDialog(QDialog):
    """Server URL, username, password, remember me; calls the injected `sign_in`."""

    def __init__(
        self,
        sign_in: SignIn,
        parent: QWidget | None = None,
        *,
        server_url: str = "",
        username: str = "",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign in — BDC Workstation")
        self._sign_in = sign_in
        self.result_value: SignInResult | None = None
        self.server = QLineEdit(server_url)
        self.server.setPlaceholderText("https://leads.example-dealer.com")
        self.username = QLineEdit(username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox("Remember me on this PC (kept in the system keyring)")
        self.error = QLabel()
        self.error.setObjectName("sign_in_error")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        form.addRow("&Server:", self.server)
        form.addRow("&Username:", self.username)
        form.addRow("&Password:", self.password)
        form.addRow("", self.remember)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Sign in")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        (self.password if username else self.username).setFocus()

    def request(self) -> SignInRequest:
        return SignInRequest(
            server_url=self.server.text().strip(),
            username=self.username.text().strip(),
            password=self.password.text(),
            remember=self.remember.isChecked(),
        )

    def submit(self) -> None:
        request = self.request()
        missing = [
            name
            for name, value in (
                ("server URL", request.server_url),
                ("username", request.username),
                ("password", request.password),
            )
            if not value
        ]
        if missing:
            self._fail(f"Enter your {', '.join(missing)}.")
            return
        result = self._sign_in(request)
        self.result_value = result
        if result.ok:
            self.accept()
        else:
            self.password.clear()
            self._fail(result.message or "Sign-in failed.")

    def _fail(self, message: str) -> None:
        self.error.setText(f"✖ {message}")
        self.error.show()


class SettingsDialog(QDialog):
    """First-run (and later) settings: dialer backend, sounds, theme. Stored in QSettings."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings — BDC Workstation")
        self._settings = settings
        self.dialer = QComboBox()
        for key, label in DIALERS:
            self.dialer.addItem(label, key)
        current = str(settings.value("dialer", "tel"))
        self.dialer.setCurrentIndex(
            max(0, [k for k, _ in DIALERS].index(current) if current in dict(DIALERS) else 0)
        )
        self.sounds = QCheckBox("Play a sound for new hot leads and customer replies")
        self.sounds.setChecked(_bool(settings.value("sounds", True)))
        self.theme = QComboBox()
        for name in THEMES:
            self.theme.addItem({"system": "Follow the system"}.get(name, name.title()), name)
        theme = str(settings.value("theme", "system"))
        self.theme.setCurrentIndex(THEMES.index(theme) if theme in THEMES else 0)
        form = QFormLayout()
        form.addRow("&Dialer:", self.dialer)
        form.addRow("", self.sounds)
        form.addRow("&Theme:", self.theme)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("How this PC works with you. You can change these later."))
        layout.addLayout(form)
        layout.addWidget(buttons)

    def save(self) -> None:
        self._settings.setValue("dialer", self.dialer.currentData())
        self._settings.setValue("sounds", self.sounds.isChecked())
        self._settings.setValue("theme", self.theme.currentData())
        self._settings.setValue("first_run_done", True)
        self._settings.sync()
        self.accept()


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def versions() -> list[tuple[str, str]]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        ("BDC Workstation", version("bdc-workstation")),
        ("Python", sys.version.split()[0]),
        ("PySide6", PySide6.__version__),
        ("Qt", qVersion()),
        ("phonenumbers", version("phonenumbers")),
        ("SQLAlchemy", version("SQLAlchemy")),
        ("httpx", version("httpx")),
        ("Platform", platform.platform()),
    ]


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About BDC Workstation")
        rows = "".join(
            f"<tr><td><b>{n}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for n, v in versions()
        )
        label = QLabel(
            "<h2>BDC Workstation</h2><p>The live lead queue for dealership BDC agents.</p>"
            f"<table>{rows}</table>"
        )
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(buttons)


class ShortcutSheet(QDialog):
    """F1: every key the workstation answers to."""

    def __init__(self, shortcuts: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(shortcuts), 2)
        table.setObjectName("shortcut_table")
        table.setHorizontalHeaderLabels(["Key", "Does"])
        table.verticalHeader().setVisible(False)
        for row, (key, does) in enumerate(shortcuts):
            table.setItem(row, 0, QTableWidgetItem(key))
            table.setItem(row, 1, QTableWidgetItem(does))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(560, 640)
