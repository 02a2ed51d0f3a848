"""The bridge between Qt signals and the core's coroutines (qasync runs asyncio on Qt's loop).

Widgets call `run(value_or_awaitable, on_done, on_error)` from plain slots: a plain value is
handed to `on_done` at once; an awaitable becomes a task (a strong reference is kept until it
ends, its exception is logged and handed to `on_error`) whose result reaches `on_done` on the Qt
thread. Never decorate a zero-argument slot with qasync.asyncSlot (see NOTES.md).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bdc.ui")

_tasks: set[asyncio.Future[Any]] = set()


def run(
    value: Any,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Future[Any] | None:
    """Deliver `value` (or what it awaits to) to `on_done`; errors go to `on_error` and the log."""
    if not inspect.isawaitable(value):
        if on_done is not None:
            on_done(value)
        return None
    future = asyncio.ensure_future(value)
    _tasks.add(future)

    def finished(task: asyncio.Future[Any]) -> None:
        _tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background action failed", exc_info=error)
            if on_error is not None:
                on_error(error)
            return
        if on_done is not None:
            try:
                on_done(task.result())
            except Exception:
                log.exception("showing an action's result failed")

    future.add_done_callback(finished)
    return future


def pending() -> int:
    """Tasks started here and not finished yet (tests wait for 0)."""
    return len(_tasks)
