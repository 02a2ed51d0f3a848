from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QSettings

from ui.ports import CallEvent


@dataclass
class FakeDialer:
    name: str = "fake"
    dialed: list[tuple[str, str]] = field(default_factory=list)
    hung_up: int = 0
    listener: Callable[[CallEvent], None] | None = None

    def dial(self, lead_id: str, number: str) -> None:
        self.dialed.append((lead_id, number))

    def hang_up(self) -> None:
        self.hung_up += 1

    def set_listener(self, on_event: Callable[[CallEvent], None]) -> None:
        self.listener = on_event


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path) -> QSettings:  # type: ignore[no-untyped-def]
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 11:00 in Chicago, the store is open
