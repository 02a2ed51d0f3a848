"""Collects a dialer's events and lets a test wait for one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

from app.telephony.model import CallEvent, Dialer

T = TypeVar("T")


class Recorder:
    def __init__(self, dialer: Dialer) -> None:
        self.events: list[CallEvent] = []
        self._changed = asyncio.Event()
        self.unsubscribe = dialer.subscribe(self._on_event)

    def _on_event(self, event: CallEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, kind: type[T], timeout_s: float = 10.0) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            for event in self.events:
                if isinstance(event, kind):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout_s} s; got {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    @property
    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]
