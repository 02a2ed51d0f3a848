"""Fixtures: a real lead API on loopback (`live`) and workstations signed in to it (`floor`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.sync.live import Floor, LiveServer


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server.db")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def floor(live: LiveServer, tmp_path: Path) -> Floor:
    return Floor(live, tmp_path)
