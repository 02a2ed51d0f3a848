from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from app.telephony.model import CallDialing, CallEvent, CallHandle, DialRequest, EventHub


@pytest.fixture(autouse=True)
def unfrozen_heap() -> Iterator[None]:
    """A live session freezes the heap once its queue is loaded (ui.live.freeze_heap): each
    test's objects go back to the collector afterwards."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def qt_asyncio(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """asyncio on Qt's loop: tasks run while qtbot.wait*/waitUntil spin Qt (NOTES.md)."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        # qasync marked it as the running loop (already_running=True) and never unmarks it:
        # later tests' asyncio.run() (tests/app in the same run) would refuse to start.
        asyncio.events._set_running_loop(None)


@dataclass
class FakeDialer:
    """An app.telephony Dialer that records what it was asked; tests emit the call's events."""

    name: str = "fake"
    reports_state: bool = True
    records_calls: bool = False
    dialed: list[DialRequest] = field(default_factory=list)
    hung_up: int = 0
    hub: EventHub = field(default_factory=EventHub)
    active: CallHandle | None = None

    async def dial(self, request: DialRequest) -> CallHandle:
        self.dialed.append(request)
        self.active = CallHandle(request.call_id, request, NOW, self.name)
        self.hub.emit(CallDialing(request.call_id, NOW, request.number, request.lead_id, "fake"))
        return self.active

    async def hang_up(self, call_id: str | None = None) -> None:
        self.hung_up += 1

    def subscribe(self, listener: Callable[[CallEvent], None]) -> Callable[[], None]:
        return self.hub.subscribe(listener)

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        pass

    @property
    def active_call(self) -> CallHandle | None:
        return self.active

    async def close(self) -> None:
        pass


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path) -> QSettings:  # type: ignore[no-untyped-def]
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 11:00 in Chicago, the store is open
