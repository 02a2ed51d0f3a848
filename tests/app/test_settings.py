from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from app.domain.errors import ResourceError
from app.settings import Settings, fleet_path, load_settings, save_user_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_files_gives_the_defaults_and_everything_changeable(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path / "none.toml", tmp_path / "nobody.toml")
    assert loaded.settings == Settings()
    assert loaded.may_change("server_url")
    assert loaded.fleet_file is None
    assert loaded.user_file is None


def test_fleet_values_apply_and_user_overrides_only_what_it_allows(tmp_path: Path) -> None:
    fleet = write(
        tmp_path / "fleet.toml",
        """
[settings]
server_url = "https://leads.lakeside.example"
dialer = "baresip"
baresip_port = 5555

[policy]
user_may_change = ["theme", "sounds"]
""",
    )
    user = write(
        tmp_path / "user.toml",
        """
[settings]
theme = "dark"
server_url = "https://evil.example"
""",
    )
    loaded = load_settings(fleet, user)
    assert loaded.settings.server_url == "https://leads.lakeside.example"
    assert loaded.settings.dialer == "baresip"
    assert loaded.settings.baresip_port == 5555
    assert loaded.settings.theme == "dark"
    assert not loaded.may_change("server_url")
    assert loaded.ignored == (f"{user}: 'server_url' is set by your IT department",)


def test_a_fleet_file_without_policy_lets_users_change_everything(tmp_path: Path) -> None:
    fleet = write(tmp_path / "fleet.toml", '[settings]\ndialer = "demo"\n')
    user = write(tmp_path / "user.toml", '[settings]\ndialer = "handoff"\n')
    assert load_settings(fleet, user).settings.dialer == "handoff"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[settings]\ndialer = "fax"\n', "fleet.toml:2 [settings.dialer]: must be one of"),
        ("[settings]\nbaresip_port = 70000\n", "[settings.baresip_port]: must be between 1"),
        ('[settings]\nsounds = "yes"\n', "[settings.sounds]: must be bool, got str"),
        ("[settings]\nbaresip_port = true\n", "must be int, got bool"),
        ('[settings]\nserver = "x"\n', "unknown field 'server'"),
        ('[policy]\nuser_may_change = ["colour"]\n', "unknown setting 'colour'"),
        ("[settings\n", "not valid TOML"),
    ],
)
def test_a_broken_fleet_file_names_file_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    fleet = write(tmp_path / "fleet.toml", text)
    with pytest.raises(ResourceError) as caught:
        load_settings(fleet, tmp_path / "none.toml")
    assert message in str(caught.value)
    assert str(fleet) in str(caught.value)


def test_saving_writes_only_allowed_settings_atomically(tmp_path: Path) -> None:
    fleet = write(tmp_path / "fleet.toml", '[policy]\nuser_may_change = ["theme", "sounds"]\n')
    user = tmp_path / "cfg" / "settings.toml"
    loaded = load_settings(fleet, user)
    new = save_user_settings(loaded, {"theme": "light", "sounds": False}, user)
    assert (new.theme, new.sounds) == ("light", False)
    assert tomllib.loads(user.read_text()) == {"settings": {"sounds": False, "theme": "light"}}
    assert not list(user.parent.glob("*.tmp"))
    reloaded = load_settings(fleet, user)
    assert (reloaded.settings.theme, reloaded.settings.sounds) == ("light", False)

    with pytest.raises(ResourceError, match="set by your IT department"):
        save_user_settings(reloaded, {"dialer": "demo"}, user)
    with pytest.raises(ResourceError, match="must be one of system, light, dark"):
        save_user_settings(reloaded, {"theme": "neon"}, user)
    assert load_settings(fleet, user).settings.theme == "light"


def test_saving_keeps_quotes_and_backslashes_literal(tmp_path: Path) -> None:
    user = tmp_path / "settings.toml"
    loaded = load_settings(tmp_path / "none.toml", user)
    odd = 'C:\\certs\\"dealer" CA.pem'
    save_user_settings(loaded, {"trusted_ca_file": odd}, user)
    assert load_settings(tmp_path / "none.toml", user).settings.trusted_ca_file == odd


def test_the_fleet_file_location_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BDC_FLEET_CONFIG", str(tmp_path / "it.toml"))
    assert fleet_path() == tmp_path / "it.toml"
