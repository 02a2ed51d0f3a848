"""The rules files (resources/) as the server uses them: parsed once per app, then shared.

Also the server's clock: routes read "now" through `clock_of(app)` so tests can pin time (set
`app.state.clock` to a zero-argument callable returning an aware datetime).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

from app.domain.clocks import BusinessHours
from app.rulebook import Rulebook, list_resources, load_rulebook, read_resource
from server.db import StoreRow, utcnow

_load_lock = threading.Lock()


def get_rules(app: Any) -> Rulebook:
    """The app's Rulebook, loaded (and validated) on first use and cached on `app.state.rules`."""
    rules = getattr(app.state, "rules", None)
    if rules is None:
        with _load_lock:  # several request threads may ask at once; parse the files only once
            rules = getattr(app.state, "rules", None)
            if rules is None:
                rules = load_rulebook()
                app.state.rules = rules
    assert isinstance(rules, Rulebook)
    return rules


def store_hours(rules: Rulebook, store: StoreRow) -> BusinessHours:
    """The shipped opening hours, read in the store's own time zone."""
    if rules.hours.time_zone == store.time_zone:
        return rules.hours
    return replace(rules.hours, time_zone=store.time_zone)


def clock_of(app: Any) -> datetime:
    """The current instant as the app sees it (UTC, aware)."""
    clock = getattr(app.state, "clock", None)
    return clock() if clock is not None else utcnow()


# --------------------------------------------------------------------------- the files, for clients


def rules_files() -> dict[str, str]:
    """The texts of every rules file the Rulebook loads, by name relative to resources/."""
    names = ["scoring.toml", "dispositions.toml", "calling_rules.toml", "store_hours.toml"]
    names.append("us_zip_prefixes.toml")
    names += list_resources("cadences", ".toml")
    names += list_resources("templates", ".toml")
    names += list_resources("scripts", ".md")
    return {name: read_resource(name)[0] for name in sorted(names)}


def rules_version(files: dict[str, str]) -> str:
    """A content hash of the set: names and texts (any change to any file changes it)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        for part in (name, files[name]):
            data = part.encode("utf-8")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.hexdigest()[:32]


def rules_set(app: Any) -> tuple[str, dict[str, str]]:
    """(version, files) of the rules this app runs on, read once and cached on app.state."""
    cached = getattr(app.state, "rules_files", None)
    if cached is None:
        with _load_lock:
            cached = getattr(app.state, "rules_files", None)
            if cached is None:
                files = rules_files()
                cached = (rules_version(files), files)
                app.state.rules_files = cached
    assert isinstance(cached, tuple)
    return cached
