"""Start-up from the cached snapshot: rows at once, leads derived in the background."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from app.demo.generator import DEMO_STORE
from app.rulebook import load_rulebook
from app.services.queue import QueueService
from app.services.workqueue import WorkQueue
from app.store.db import open_local_store
from tests.app.store.factories import (
    T0,
    activity_change,
    lead_change,
    make_call,
    make_lead,
    removed_change,
)

KEY = "x" * 64
NOW = T0 + timedelta(minutes=30)


def _service(store: object) -> QueueService:
    return QueueService(store, WorkQueue(load_rulebook(), DEMO_STORE), "agent-ann", lambda: NOW)  # type: ignore[arg-type]


def test_the_snapshot_shows_at_once_and_the_background_derives_every_lead(
    tmp_path: Path,
) -> None:
    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        names = ["Ann", "Bob", "Cy", "Di", "Ed", "Flo"]
        leads = [make_lead(f"lead-{n}", first=name) for n, name in enumerate(names)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
        store.repository.apply_changes([activity_change(make_call("lead-2"))], "2")
        first = _service(store)
        first.load()
        expected = first.items()
        assert len(expected) == 6
        assert first.save_snapshot() == 6
        # meanwhile: one lead left the queue, another got a call
        store.repository.apply_changes([removed_change("lead-4")], "3")
        store.repository.apply_changes([activity_change(make_call("lead-5", minutes=3))], "4")

        async def main() -> None:
            second = _service(store)
            told: list[tuple[str, ...]] = []
            second.on_changed(told.append)
            assert second.load(background=True) == 6
            queue = second.work_queue
            assert queue.loading
            assert second.items() == expected  # the cached rows, before anything was derived
            assert [i.lead_id for i in queue.items(NOW, search="flo")] == ["lead-5"]
            # asked about before its turn: derived on demand
            assert second.detail("lead-1").lead.person.first_name == "Bob"
            await second.loaded()
            assert not queue.loading
            full = _service(store)
            full.load()
            assert second.items() == full.items()
            assert "lead-4" not in queue and len(queue) == 5
            assert any("lead-4" in ids for ids in told)

        asyncio.run(main())
    finally:
        store.close()


def test_without_a_snapshot_the_background_start_loads_at_once(tmp_path: Path) -> None:
    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        store.repository.apply_changes([lead_change(make_lead("lead-1"))], "1")

        async def main() -> None:
            service = _service(store)
            assert service.load(background=True) == 1
            assert not service.work_queue.loading and len(service.items()) == 1
            await service.loaded()

        asyncio.run(main())
    finally:
        store.close()


def test_bulk_pages_refresh_each_lead_once_a_moment_later_small_pages_at_once(
    tmp_path: Path,
) -> None:
    from app.services import queue as queue_module
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(150)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")

        async def main() -> None:
            service = _service(store)
            told: list[tuple[str, ...]] = []
            service.on_changed(told.append)
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids))
            service.applied(AppliedChanges(leads=ids[:5]))  # joins the waiting bulk
            assert told == [] and len(service.work_queue) == 0
            await asyncio.sleep(queue_module.BULK_FLUSH_SECONDS + 0.3)
            assert told == [ids]  # once, each lead once
            service.applied(AppliedChanges(leads=ids[:1]))
            assert told[-1] == ids[:1]  # a small page: at once

        asyncio.run(main())
    finally:
        store.close()
