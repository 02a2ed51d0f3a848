from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from ui.dialogs import AboutDialog, SettingsDialog, SignInDialog, versions
from ui.ports import SignInRequest, SignInResult


def test_sign_in_calls_the_injected_callable_and_shows_refusals(qtbot: QtBot) -> None:
    seen: list[SignInRequest] = []

    def sign_in(request: SignInRequest) -> SignInResult:
        seen.append(request)
        if request.password == "right":
            return SignInResult(True, agent_name="Ana Ruiz")
        return SignInResult(False, "wrong username or password")

    dialog = SignInDialog(sign_in, server_url="https://leads.example.com")
    qtbot.addWidget(dialog)
    dialog.submit()
    assert "username" in dialog.error.text() and not seen  # nothing sent half-filled
    dialog.username.setText("ana")
    dialog.password.setText("wrong")
    dialog.remember.setChecked(True)
    dialog.submit()
    assert seen[-1] == SignInRequest("https://leads.example.com", "ana", "wrong", True)
    assert "wrong username or password" in dialog.error.text()
    assert dialog.password.text() == ""
    dialog.password.setText("right")
    dialog.submit()
    assert dialog.result() == SignInDialog.DialogCode.Accepted


def test_settings_are_saved(qtbot: QtBot, settings: QSettings) -> None:
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.dialer.setCurrentIndex(1)
    dialog.sounds.setChecked(False)
    dialog.theme.setCurrentIndex(2)
    dialog.save()
    assert settings.value("dialer") == "simulated"
    assert settings.value("theme") == "dark"
    assert str(settings.value("sounds")).lower() == "false"


def test_about_lists_versions(qtbot: QtBot) -> None:
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    names = [name for name, _ in versions()]
    assert "PySide6" in names and "Qt" in names and "Python" in names
