"""Blocking work (store reads and writes) off the event loop, in plain Python threads.

On the desktop the loop is qasync's, whose default executor (what `asyncio.to_thread` uses) runs
work in QThreads: one still running when the interpreter exits aborts the process with
"QThread: Destroyed while thread '' is still running" — as a test run did, ending while a
window's background read was under way. Plain threads are joined at exit instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Store work only: a couple of threads are plenty (SQLite serializes writers anyway).
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bdc-store")


async def in_thread(work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`work(*args, **kwargs)` in a worker thread; the result (or exception) on the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(work, *args, **kwargs))


_young_only_depth = 0
_saved_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def young_collections_only() -> Iterator[None]:
    """Only the garbage collector's young generations meanwhile (a bulk download that builds
    up a big heap): a full collection scans every live object, and a 50,000-lead first
    download ran 77 of them, 19 s of its 88. Cycles made meanwhile are still collected young;
    full collections resume when the last overlapping use ends (loop thread only)."""
    global _young_only_depth, _saved_threshold
    if _young_only_depth == 0:
        _saved_threshold = gc.get_threshold()
        young, middle, _old = _saved_threshold
        gc.set_threshold(young, middle, 1_000_000_000)
    _young_only_depth += 1
    try:
        yield
    finally:
        _young_only_depth -= 1
        if _young_only_depth == 0 and _saved_threshold is not None:
            gc.set_threshold(*_saved_threshold)
