"""Blocking work (store reads and writes) off the event loop, in plain Python threads.

On the desktop the loop is qasync's, whose default executor (what `asyncio.to_thread` uses) runs
work in QThreads: one still running when the interpreter exits aborts the process with
"QThread: Destroyed while thread '' is still running" — as a test run did, ending while a
window's background read was under way. Plain threads are joined at exit instead.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Store work only: a couple of threads are plenty (SQLite serializes writers anyway).
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bdc-store")


async def in_thread(work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`work(*args, **kwargs)` in a worker thread; the result (or exception) on the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(work, *args, **kwargs))
