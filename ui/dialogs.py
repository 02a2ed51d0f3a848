"""Sign-in, first-run settings, About, and the F1 shortcut sheet."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.errors import ResourceError
from app.settings import LoadedSettings, Settings, save_user_settings
from app.telephony.factory import probe_dialer
from ui import asyncs
from ui.ports import SignIn, SignInRequest, SignInResult
from ui.theme import THEMES

DIALERS = (
    ("handoff", "Phone program on this PC (tel:/sip:/callto: links)"),
    ("baresip", "baresip softphone (ctrl_tcp)"),
    ("demo", "Demo softphone (simulated calls)"),
    ("server", "The lead API rings my phone, then the customer"),
)
LOCKED = "set by your IT department"


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
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(False)
        self.error.setText("Signing in…")
        self.error.show()
        asyncs.run(
            self._sign_in(request),
            self._answered,
            lambda error: self._answered(SignInResult(False, str(error))),
        )

    def _answered(self, result: SignInResult) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self.result_value = result
        if result.ok:
            self.error.hide()
            self.accept()
        else:
            self.password.clear()
            self._fail(result.message or "Sign-in failed.")

    def _fail(self, message: str) -> None:
        self.error.setText(f"✖ {message}")
        self.error.show()


class SettingsDialog(QDialog):
    """First-run (and later) settings: dialer, sounds, notifications, theme — app.settings, the
    user's file. A setting IT locked in the fleet file shows its value, disabled, and says so."""

    def __init__(
        self,
        loaded: LoadedSettings,
        user_file: Path,
        parent: QWidget | None = None,
        *,
        saved: Callable[[Settings], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings — BDC Workstation")
        self._loaded = loaded
        self._user_file = user_file
        self._saved = saved
        self.settings = loaded.settings
        current = loaded.settings
        self.dialer = QComboBox()
        self.dialer.setObjectName("setting_dialer")
        for key, label in DIALERS:
            self.dialer.addItem(label, key)
        keys = [k for k, _ in DIALERS]
        self.dialer.setCurrentIndex(keys.index(current.dialer) if current.dialer in keys else 0)
        self.baresip_host = QLineEdit(current.baresip_host)
        self.baresip_host.setObjectName("setting_baresip_host")
        self.baresip_port = QSpinBox()
        self.baresip_port.setObjectName("setting_baresip_port")
        self.baresip_port.setRange(1, 65535)
        self.baresip_port.setValue(current.baresip_port)
        self.test_dialer = QPushButton("&Test dialer")
        self.test_dialer.setObjectName("test_dialer")
        self.test_dialer.clicked.connect(self.run_dialer_test)
        self.test_result = QLabel()
        self.test_result.setObjectName("dialer_test_result")
        self.test_result.setWordWrap(True)
        self.test_result.hide()
        self.sounds = QCheckBox("Play a sound for new hot leads and customer replies")
        self.sounds.setChecked(current.sounds)
        self.notifications = QCheckBox("Desktop notification for new hot leads and replies")
        self.notifications.setChecked(current.notifications)
        self.theme = QComboBox()
        for name in THEMES:
            self.theme.addItem({"system": "Follow the system"}.get(name, name.title()), name)
        self.theme.setCurrentIndex(THEMES.index(current.theme) if current.theme in THEMES else 0)
        self.error = QLabel()
        self.error.setObjectName("settings_error")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        for name, label, widget in (
            ("dialer", "&Dialer:", self.dialer),
            ("baresip_host", "baresip &host:", self.baresip_host),
            ("baresip_port", "baresip &port:", self.baresip_port),
            ("sounds", "", self.sounds),
            ("notifications", "", self.notifications),
            ("theme", "&Theme:", self.theme),
        ):
            if loaded.may_change(name):
                form.addRow(label, widget)
                continue
            widget.setEnabled(False)
            widget.setToolTip(f"This setting is {LOCKED}.")
            note = QLabel(f"<i>{LOCKED}</i>")
            note.setObjectName(f"locked_{name}")
            row = QWidget()
            row_layout = QHBoxLayout(row)
            row_layout.setContentsMargins(0, 0, 0, 0)
            row_layout.addWidget(widget, 1)
            row_layout.addWidget(note)
            form.addRow(label, row)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("How this PC works with you. You can change these later."))
        layout.addLayout(form)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_dialer)
        test_row.addWidget(self.test_result, 1)
        layout.addLayout(test_row)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def run_dialer_test(self) -> None:
        """Check the dialer as chosen in the dialog (not yet saved), and say what happened."""
        candidate = replace(
            self._loaded.settings,
            dialer=self.dialer.currentData(),
            baresip_host=self.baresip_host.text().strip(),
            baresip_port=self.baresip_port.value(),
        )
        self.test_dialer.setEnabled(False)
        self.test_result.setText("Testing …")
        self.test_result.show()

        def done(text: str) -> None:
            self.test_dialer.setEnabled(True)
            self.test_result.setText(f"✔ {text}")

        def failed(error: BaseException) -> None:
            self.test_dialer.setEnabled(True)
            self.test_result.setText(f"✖ {error}")

        asyncs.run(probe_dialer(candidate), done, failed)

    def changes(self) -> dict[str, Any]:
        wanted: dict[str, Any] = {
            "dialer": self.dialer.currentData(),
            "baresip_host": self.baresip_host.text().strip(),
            "baresip_port": self.baresip_port.value(),
            "sounds": self.sounds.isChecked(),
            "notifications": self.notifications.isChecked(),
            "theme": self.theme.currentData(),
        }
        return {
            name: value
            for name, value in wanted.items()
            if self._loaded.may_change(name) and getattr(self._loaded.settings, name) != value
        }

    def save(self) -> None:
        try:
            self.settings = save_user_settings(self._loaded, self.changes(), self._user_file)
        except ResourceError as exc:
            self.error.setText(f"✖ {exc}")
            self.error.show()
            return
        if self._saved is not None:
            self._saved(self.settings)
        self.accept()


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
