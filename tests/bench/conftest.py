"""Benchmark fixtures: the figure recorder, and asyncio on Qt's loop for the live-window figures.

`make bench` sets BDC_BENCH=full (50,000 leads, 200 agents) and BDC_BENCH_RESULTS (the JSON
lines file); inside `make test` the same tests run at small sizes as a smoke test of the harness
and write only to a temporary file, whose lines are checked here. No budget is asserted there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.recorder import FULL, Recorder

KEYS = {"name", "value", "unit", "budget", "lower_is_better", "baseline"}
_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After the full-size Qt runs, PySide6 6.12 on Python 3.11 aborts the interpreter's teardown
    (`Fatal Python error: bool_dealloc` / `none_dealloc`, a reference-count bug in the extension)
    — after every figure was written and pytest reported. Under `make bench` the process ends
    here with pytest's own status, so that crash cannot fail a good run."""
    if FULL and _STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_STATUS[-1])


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    chosen = os.environ.get("BDC_BENCH_RESULTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("bench") / "bench-results.jsonl"
    recorder = Recorder(path)
    yield recorder
    if not FULL and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            assert set(entry) == KEYS, entry
            assert isinstance(entry["value"], float) and entry["value"] >= 0, entry
            assert isinstance(entry["lower_is_better"], bool), entry


@pytest.fixture
def qt_loop(qapp: object) -> Iterator[asyncio.AbstractEventLoop]:
    """asyncio on Qt's loop: tasks run while qtbot.wait*/waitUntil spin Qt (NOTES.md)."""
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        # qasync marks it as the running loop (already_running=True) and never unmarks it:
        # later tests' asyncio.run() would refuse to start (see tests/ui/conftest.py).
        asyncio.events._set_running_loop(None)
