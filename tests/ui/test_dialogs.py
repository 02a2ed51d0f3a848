from pathlib import Path

from pytestqt.qtbot import QtBot

from app.settings import load_settings
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


def test_an_async_sign_in_answers_when_it_is_done(qtbot: QtBot) -> None:
    async def sign_in(request: SignInRequest) -> SignInResult:
        return SignInResult(request.password == "right", "refused")

    dialog = SignInDialog(sign_in, server_url="https://leads.example.com", username="ana")
    qtbot.addWidget(dialog)
    dialog.password.setText("right")
    dialog.submit()
    qtbot.waitUntil(lambda: dialog.result() == SignInDialog.DialogCode.Accepted)


def test_settings_are_saved_to_the_user_file(qtbot: QtBot, tmp_path: Path) -> None:
    user = tmp_path / "settings.toml"
    loaded = load_settings(fleet=tmp_path / "none.toml", user=user)
    dialog = SettingsDialog(loaded, user)
    qtbot.addWidget(dialog)
    dialog.dialer.setCurrentIndex(2)
    dialog.sounds.setChecked(False)
    dialog.theme.setCurrentIndex(2)
    dialog.save()
    again = load_settings(fleet=tmp_path / "none.toml", user=user).settings
    assert again.dialer == "demo" and again.theme == "dark" and again.sounds is False


def test_settings_locked_by_it_are_shown_disabled(qtbot: QtBot, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[settings]\ndialer = "baresip"\n\n[policy]\nuser_may_change = ["theme", "sounds"]\n'
    )
    user = tmp_path / "settings.toml"
    loaded = load_settings(fleet=fleet, user=user)
    dialog = SettingsDialog(loaded, user)
    qtbot.addWidget(dialog)
    assert not dialog.dialer.isEnabled() and dialog.dialer.currentData() == "baresip"
    assert "IT department" in dialog.dialer.toolTip()
    assert dialog.theme.isEnabled()
    dialog.theme.setCurrentIndex(1)
    dialog.save()
    assert load_settings(fleet=fleet, user=user).settings.theme == "light"
    assert "dialer" not in user.read_text()


def test_about_lists_versions(qtbot: QtBot) -> None:
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    names = [name for name, _ in versions()]
    assert "PySide6" in names and "Qt" in names and "Python" in names


def test_the_test_button_checks_the_dialer_as_chosen(qtbot: QtBot, tmp_path: Path) -> None:
    from tests.app.telephony.softphones import free_port

    user = tmp_path / "settings.toml"
    dialog = SettingsDialog(load_settings(fleet=tmp_path / "none.toml", user=user), user)
    qtbot.addWidget(dialog)
    dialog.dialer.setCurrentIndex(dialog.dialer.findData("baresip"))
    dialog.baresip_port.setValue(free_port())  # nothing listens there
    dialog.test_dialer.click()
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✖"), timeout=10_000)
    assert dialog.test_dialer.isEnabled()
    dialog.dialer.setCurrentIndex(dialog.dialer.findData("demo"))
    dialog.test_dialer.click()
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✔"), timeout=5_000)
    assert "demo softphone" in dialog.test_result.text()
    dialog.baresip_port.setValue(5555)
    dialog.save()
    assert load_settings(fleet=tmp_path / "none.toml", user=user).settings.baresip_port == 5555
