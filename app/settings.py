"""The workstation's settings: declared once, with types and defaults, in three layers.

1. The defaults below.
2. The fleet file IT deploys machine-wide (`fleet.toml` in the platform's site config folder:
   `/etc/xdg/bdc-workstation/` on Linux, `C:\\ProgramData\\bdc-workstation\\` on Windows, or the
   path in `BDC_FLEET_CONFIG`). It sets values and says which settings users may change.
3. The user's own file (`settings.toml` in the user config folder), applied only where the fleet
   file allows it. A user value for a locked setting is ignored and reported, never an error: a
   locked-down PC must still start.

Every file is validated on load; a broken one names the file, the line and the field.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from app.domain.errors import ResourceError
from app.domain.rules_file import RulesDocument

APP_NAME = "bdc-workstation"
FLEET_ENV = "BDC_FLEET_CONFIG"
FLEET_FILE = "fleet.toml"
USER_FILE = "settings.toml"

DIALERS = ("handoff", "baresip", "demo", "server")
URI_SCHEMES = ("tel", "sip", "callto")
THEMES = ("system", "light", "dark")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a user or IT can set. Field metadata holds the help text and allowed values."""

    server_url: str = field(default="", metadata={"help": "URL of the lead API"})
    trusted_ca_file: str = field(
        default="",
        metadata={"help": "PEM file of a private CA to trust in addition to the system's"},
    )
    dialer: str = field(
        default="handoff",
        metadata={"help": "how calls are placed", "choices": DIALERS},
    )
    dialer_uri_scheme: str = field(
        default="tel",
        metadata={"help": "URL scheme handed to the softphone", "choices": URI_SCHEMES},
    )
    baresip_host: str = field(default="127.0.0.1", metadata={"help": "baresip ctrl_tcp host"})
    baresip_port: int = field(
        default=4444, metadata={"help": "baresip ctrl_tcp port", "range": (1, 65535)}
    )
    theme: str = field(default="system", metadata={"help": "colour theme", "choices": THEMES})
    sounds: bool = field(default=True, metadata={"help": "play a sound for a new hot lead"})
    notifications: bool = field(
        default=True, metadata={"help": "desktop notification for a new hot lead"}
    )
    poll_interval_s: int = field(
        default=5,
        metadata={
            "help": "seconds between polls when live updates are unavailable",
            "range": (1, 300),
        },
    )


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))
_TYPES: dict[str, type] = {f.name: type(getattr(Settings(), f.name)) for f in fields(Settings)}
_META: dict[str, Mapping[str, Any]] = {f.name: f.metadata for f in fields(Settings)}


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    """The effective settings, what users may change, and what was ignored (to show IT/users)."""

    settings: Settings
    user_may_change: frozenset[str]
    fleet_file: Path | None
    user_file: Path | None
    ignored: tuple[str, ...] = ()

    def may_change(self, name: str) -> bool:
        return name in self.user_may_change


def fleet_path() -> Path:
    override = os.environ.get(FLEET_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / FLEET_FILE


def user_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / USER_FILE


def load_settings(fleet: Path | None = None, user: Path | None = None) -> LoadedSettings:
    """Defaults ← fleet file ← the user's file where the fleet file allows it."""
    fleet = fleet if fleet is not None else fleet_path()
    user = user if user is not None else user_path()
    values: dict[str, Any] = {}
    may_change = frozenset(SETTING_NAMES)
    fleet_used: Path | None = None
    if fleet.is_file():
        doc = _read(fleet)
        doc.check_keys(doc.data, (), {"settings", "policy"})
        values.update(_values(doc, doc.data.get("settings", {}), ("settings",)))
        may_change = _policy(doc)
        fleet_used = fleet
    ignored: list[str] = []
    user_used: Path | None = None
    if user.is_file():
        doc = _read(user)
        doc.check_keys(doc.data, (), {"settings"})
        for name, value in _values(doc, doc.data.get("settings", {}), ("settings",)).items():
            if name in may_change:
                values[name] = value
            else:
                ignored.append(f"{user}: '{name}' is set by your IT department")
        user_used = user
    return LoadedSettings(
        settings=replace(Settings(), **values),
        user_may_change=may_change,
        fleet_file=fleet_used,
        user_file=user_used,
        ignored=tuple(ignored),
    )


def save_user_settings(loaded: LoadedSettings, changes: Mapping[str, Any], user: Path) -> Settings:
    """Write the user's changes (only those IT allows) and return the new effective settings.

    Raises ResourceError naming the setting when a value is wrong or the setting is locked.
    """
    for name, value in changes.items():
        if name not in SETTING_NAMES:
            raise ResourceError(str(user), f"unknown setting '{name}'", field=name)
        if name not in loaded.user_may_change:
            raise ResourceError(str(user), "this setting is set by your IT department", field=name)
        problem = _problem(name, value)
        if problem:
            raise ResourceError(str(user), problem, field=name)
    current: dict[str, Any] = {}
    if user.is_file():
        doc = _read(user)
        current = dict(doc.data.get("settings", {}))
    current.update(changes)
    user.parent.mkdir(parents=True, exist_ok=True)
    tmp = user.with_suffix(".tmp")
    tmp.write_text(_to_toml({"settings": current}), encoding="utf-8")
    os.replace(tmp, user)  # atomic: a crash never leaves half a settings file
    return replace(loaded.settings, **changes)


def _read(path: Path) -> RulesDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResourceError(str(path), f"cannot read: {exc}") from exc
    return RulesDocument(text, str(path))


def _values(doc: RulesDocument, table: Any, path: tuple[str, ...]) -> dict[str, Any]:
    table = doc.table(path, table)
    doc.check_keys(table, path, set(SETTING_NAMES))
    out: dict[str, Any] = {}
    for name, value in table.items():
        problem = _problem(name, value)
        if problem:
            raise doc.error((*path, name), problem)
        out[name] = value
    return out


def _policy(doc: RulesDocument) -> frozenset[str]:
    policy = doc.table(("policy",), doc.data.get("policy", {}))
    doc.check_keys(policy, ("policy",), {"user_may_change"})
    if "user_may_change" not in policy:
        return frozenset(SETTING_NAMES)
    names = doc.array(("policy", "user_may_change"), policy["user_may_change"])
    for index, name in enumerate(names):
        if name not in SETTING_NAMES:
            raise doc.error(
                ("policy", "user_may_change"),
                f"item {index}: unknown setting {name!r} (known: {', '.join(SETTING_NAMES)})",
            )
    return frozenset(names)


def _problem(name: str, value: Any) -> str:
    expected = _TYPES[name]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"must be {expected.__name__}, got {type(value).__name__}"
    meta = _META[name]
    choices = meta.get("choices")
    if choices and value not in choices:
        return f"must be one of {', '.join(choices)}, got {value!r}"
    bounds = meta.get("range")
    if bounds and not bounds[0] <= value <= bounds[1]:
        return f"must be between {bounds[0]} and {bounds[1]}, got {value}"
    return ""


def _to_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        for key, value in sorted(values.items()):
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int):
                text = str(value)
            else:
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{key} = {text}")
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must read back
    return text
