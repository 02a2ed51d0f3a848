"""Fixtures for the local store tests: a fresh encrypted database per test, in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import LocalStore, open_local_store

KEY = "5f" * 32


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "local.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[LocalStore]:
    opened = open_local_store(db_path, KEY)
    try:
        yield opened
    finally:
        opened.close()
