"""Where this PC keeps a user's local data, and how to remove it on request.

Uninstalling never deletes it (unsent work may be in the outbox); `bdc-workstation
--remove-local-data` does, after saying what it will delete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import platformdirs

from app.settings import APP_NAME


def local_data_folders() -> tuple[Path, ...]:
    """The user's encrypted lead cache, settings and logs, in that order."""
    return (
        Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )


def remove_local_data(folders: tuple[Path, ...] | None = None) -> list[Path]:
    """Delete the folders that exist; return those deleted."""
    removed: list[Path] = []
    for folder in folders if folders is not None else local_data_folders():
        if folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
