"""app.background: store work in plain threads, and the collector's policy for bulk work."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from app.background import in_thread, young_collections_only


def test_work_runs_in_a_plain_thread_and_its_error_reaches_the_caller() -> None:
    async def main() -> None:
        name = await in_thread(lambda: threading.current_thread().name)
        assert name.startswith("bdc-store")
        with pytest.raises(ZeroDivisionError):
            await in_thread(lambda: 1 / 0)

    asyncio.run(main())


def test_only_young_collections_run_meanwhile_and_the_policy_comes_back_even_on_error() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def download() -> None:
        with young_collections_only():
            seen.append(gc.get_threshold())
            raise RuntimeError("the download failed")

    with pytest.raises(RuntimeError):
        download()
    assert seen[0][:2] == before[:2] and seen[0][2] >= 1_000_000
    assert gc.get_threshold() == before


def test_overlapping_uses_restore_the_policy_only_when_the_last_ends() -> None:
    """Two workstations in one process (tests, benchmarks) may download at once."""
    before = gc.get_threshold()
    first, second = young_collections_only(), young_collections_only()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[2] >= 1_000_000  # the second still downloads
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
