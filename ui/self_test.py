"""`bdc-workstation --self-test`: prove an installed copy works, for IT and for the package test.

Opens the main window offscreen, finds the keyring (or reports the session-only mode), opens an
encrypted store in a scratch folder and checks it is not plain SQLite, loads every rules file.
Prints one line per check; exits 0 when all pass, 1 otherwise. It never touches the user's data.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Check = Callable[[], str]


def run_self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.perf_counter()
    checks: list[tuple[str, Check]] = [
        ("rules files", _rules),
        ("settings", _settings),
        ("secure password store", _keyring),
        ("encrypted local database", _store),
        ("main window", _window),
    ]
    failed = 0
    for name, check in checks:
        try:
            detail = check()
        except Exception as exc:  # report every failure, then exit non-zero
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"ok   {name}: {detail}")
    elapsed = time.perf_counter() - started
    verdict = "self-test passed" if not failed else f"self-test FAILED ({failed} checks)"
    print(f"{verdict} in {elapsed:.1f} s")
    return 0 if not failed else 1


def _rules() -> str:
    from app.rulebook import load_rulebook

    book = load_rulebook()
    return (
        f"{len(book.cadences)} cadences, {len(book.dispositions)} dispositions, "
        f"{len(book.scripts)} call scripts"
    )


def _settings() -> str:
    from app.settings import fleet_path, load_settings

    loaded = load_settings()
    fleet = str(loaded.fleet_file) if loaded.fleet_file else f"none at {fleet_path()}"
    return f"fleet file {fleet}; dialer {loaded.settings.dialer}"


def _keyring() -> str:
    from app.sync.credentials import open_secret_store

    _store, secure, message = open_secret_store("bdc-workstation-self-test")
    return message if secure else f"session-only mode — {message}"


def _store() -> str:
    from app.store.db import open_local_store

    with tempfile.TemporaryDirectory(prefix="bdc-self-test-") as folder:
        path = Path(folder) / "self-test.db"
        store = open_local_store(path, secrets.token_hex(32))
        store.close()
        header = path.read_bytes()[:16]
        if header.startswith(b"SQLite format 3"):
            raise RuntimeError(f"{path} is a plain SQLite file: encryption is not working")
        return "SQLCipher file created, migrated and unreadable without its key"


def _window() -> str:
    from PySide6.QtWidgets import QApplication

    from ui.composition import build_preview_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = build_preview_window(lead_count=20)
    window.show()
    for _ in range(3):
        app.processEvents()
    title = window.windowTitle()
    window.close()
    return f"opened '{title}' on the {app.platformName()} platform"
