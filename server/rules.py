"""The rules files (resources/) as the server uses them: parsed once per app, then shared.

Also the server's clock: routes read "now" through `clock_of(app)` so tests can pin time (set
`app.state.clock` to a zero-argument callable returning an aware datetime).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

from app.domain.clocks import BusinessHours
from app.rulebook import Rulebook, load_rulebook
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
