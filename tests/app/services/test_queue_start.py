"""Start-up from the cached snapshot: rows at once, leads derived in the background."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from app.demo.generator import DEMO_STORE
from app.domain.priority import WorkKind
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
            assert sum(told, ()) == ids  # each lead once, in chunks that keep the loop free
            service.applied(AppliedChanges(leads=ids[:1]))
            assert told[-1] == ids[:1]  # a small page: at once

        asyncio.run(main())
    finally:
        store.close()


def test_a_bulk_download_is_refreshed_once_after_its_last_page_in_the_background(
    tmp_path: Path,
) -> None:
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(120)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
        call = make_call("lead-007", minutes=3)
        store.repository.apply_changes([activity_change(call)], "2")

        async def main() -> None:
            service = _service(store)
            told: list[tuple[str, ...]] = []
            service.on_changed(told.append)
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids[:60], more=True))
            service.applied(
                AppliedChanges(activities=(call.id,), activity_leads=(call.lead_id,), more=True)
            )
            await asyncio.sleep(0.05)
            assert told == [] and service.refreshing  # the download goes on: nothing yet
            service.applied(AppliedChanges(leads=ids[60:]))  # the last page
            assert service.refreshing
            await service.settled()
            assert not service.refreshing
            assert sorted(sum(told, ())) == sorted(ids)  # each lead once
            full = _service(store)
            full.load()
            assert service.items() == full.items()

        asyncio.run(main())
    finally:
        store.close()


def test_a_snapshots_pages_are_derived_as_they_arrive_not_after_the_last(
    tmp_path: Path,
) -> None:
    """A snapshot page's leads are whole: the agent's rows fill in while the download goes on.
    (A change-feed page's are not: they wait for the last page, as the test above shows.)"""
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(120)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")

        async def main() -> None:
            service = _service(store)
            told: list[tuple[str, ...]] = []
            service.on_changed(told.append)
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids[:60], more=True, whole=True))
            for _ in range(300):  # not settled(): that would start the refresh itself
                if not service.refreshing:
                    break
                await asyncio.sleep(0.01)
            assert sorted(sum(told, ())) == sorted(ids[:60])  # before the next page came
            assert all(service.item_for(i) is not None for i in ids[:60])
            service.applied(AppliedChanges(leads=ids[60:], more=True, whole=True))
            service.applied(AppliedChanges())  # the end of the download
            await service.settled()
            assert sorted(sum(told, ())) == sorted(ids)  # each lead once
            full = _service(store)
            full.load()
            assert service.items() == full.items()

        asyncio.run(main())
    finally:
        store.close()


def test_a_first_downloads_pages_are_derived_from_what_they_stored_without_reading_back(
    tmp_path: Path,
) -> None:
    """The page's own reads are used for leads new to the queue; a lead the queue already shows
    (the agent may have acted on it after its page was stored) is read back from the store."""
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        shown = make_lead("lead-shown")
        store.repository.apply_changes([lead_change(shown)], "1")
        leads = [make_lead(f"lead-{n:03d}") for n in range(80)]
        entries = [{**lead_change(lead)["data"], "activities": []} for lead in leads]
        entries.append({**lead_change(shown)["data"], "activities": []})
        page = store.repository.apply_snapshot_page(entries, with_reads=True)
        assert page.read is not None and len(page.read) == 81
        read = store.repository.leads_with_history
        asked: list[str] = []

        def counting_read(lead_ids: object) -> object:
            asked.extend(lead_ids)  # type: ignore[call-overload]
            return read(lead_ids)  # type: ignore[arg-type]

        async def main() -> None:
            service = _service(store)
            service.refresh(["lead-shown"])  # on screen before the page came
            asked.clear()
            service.applied(replace(page, more=True, whole=True))
            service.applied(AppliedChanges())
            await service.settled()
            assert asked == ["lead-shown"]  # the others were derived from the page
            full = _service(store)
            full.load()
            assert service.items() == full.items()

        store.repository.leads_with_history = counting_read  # type: ignore[method-assign,assignment]
        asyncio.run(main())
    finally:
        store.close()


def test_a_lead_refreshed_while_the_bulk_refresh_reads_is_not_undone(tmp_path: Path) -> None:
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(3)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")

        read = store.repository.leads_with_history
        reading, go_on = threading.Event(), threading.Event()

        def slow_read(lead_ids: object) -> object:
            found = read(lead_ids)  # type: ignore[arg-type]
            if threading.current_thread() is not threading.main_thread():
                reading.set()
                go_on.wait(10)
            return found

        async def main() -> None:
            service = _service(store)
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids, more=True))
            service.applied(AppliedChanges())  # the last page: the refresh starts
            await asyncio.to_thread(reading.wait, 10)  # it read the old copies
            # meanwhile a newer copy is stored and refreshed at once (an action, a small page)
            store.repository.apply_changes([activity_change(make_call("lead-001"))], "2")
            service.refresh(["lead-001"])
            newer = service.work_queue.history("lead-001")
            go_on.set()
            await service.settled()
            assert service.work_queue.history("lead-001") == newer and len(newer) == 1

        store.repository.leads_with_history = slow_read  # type: ignore[method-assign,assignment]
        asyncio.run(main())
    finally:
        store.close()


def test_the_compact_snapshot_round_trips_and_older_snapshots_still_read(
    tmp_path: Path,
) -> None:
    from app.services.queue import snapshot_items, work_item_to_dict
    from app.store.repository import Dataset

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n}", first=name) for n, name in enumerate(["Ann", "Bob", "Cy"])]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
        store.repository.apply_changes([activity_change(make_call("lead-1"))], "2")
        service = _service(store)
        service.load()
        items = service.items()
        assert {i.kind for i in items} == {WorkKind.NEW_LEAD, WorkKind.FOLLOW_UP}
        assert service.save_snapshot() == 3
        content = store.repository.document_content(Dataset.WORK_ITEMS)
        assert content["version"] == 3 and len(content["rows"]) == 3
        assert snapshot_items(content) == (items, 3)
        older = [work_item_to_dict(i) for i in items]
        assert snapshot_items({"items": older, "leads": 4}) == (items, 4)
        assert snapshot_items(older) == (items, 3)

        async def main() -> None:
            for content in ({"items": older, "leads": 3}, older):
                store.repository.save_document(Dataset.WORK_ITEMS, content, NOW)
                again = _service(store)
                again.load(background=True)
                assert again.work_queue.loading and again.items() == items
                await again.loaded()
                assert again.items() == items

        asyncio.run(main())
    finally:
        store.close()


def test_a_server_change_after_a_refresh_during_the_bulk_refresh_is_not_dropped(
    tmp_path: Path,
) -> None:
    """An action refreshes a lead while the flush reads; a later server change to it waits for
    the flush (pending): the flush's later read of it is newer than the refresh and is put."""
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(3)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")

        read = store.repository.leads_with_history
        reading, go_on = threading.Event(), threading.Event()
        first = [True]

        def slow_read(lead_ids: object) -> object:
            found = read(lead_ids)  # type: ignore[arg-type]
            if threading.current_thread() is not threading.main_thread() and first[0]:
                first[0] = False
                reading.set()
                go_on.wait(10)
            return found

        async def main() -> None:
            service = _service(store)
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids, more=True))
            service.applied(AppliedChanges())  # the last page: the refresh starts
            await asyncio.to_thread(reading.wait, 10)
            store.repository.apply_changes([activity_change(make_call("lead-001"))], "2")
            service.refresh(["lead-001"])  # the agent's action
            # then the customer's change comes from the server: it waits for the flush
            change = activity_change(make_call("lead-001", minutes=2))
            service.applied(store.repository.apply_changes([change], "3"))
            go_on.set()
            await service.settled()
            assert len(service.work_queue.history("lead-001")) == 2  # the newest copy
            service2 = _service(store)
            service2.load()
            assert service.items() == service2.items()

        store.repository.leads_with_history = slow_read  # type: ignore[method-assign,assignment]
        asyncio.run(main())
    finally:
        store.close()


def test_a_failed_bulk_read_keeps_its_leads_waiting_and_is_tried_again(tmp_path: Path) -> None:
    from app.store.errors import StoreError
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(3)]
        read = store.repository.leads_with_history
        fail = [True]

        def failing_read(lead_ids: object) -> object:
            if threading.current_thread() is not threading.main_thread() and fail[0]:
                fail[0] = False
                raise StoreError("database is locked")
            return read(lead_ids)  # type: ignore[arg-type]

        async def main() -> None:
            service = _service(store)
            told: list[tuple[str, ...]] = []
            service.on_changed(told.append)
            store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids, more=True))
            service.applied(AppliedChanges())
            await service.settled()  # the read failed: the leads wait for the retry
            assert service.refreshing and service._flushing is None
            assert service._flush is not None  # a timer tries again
            await service.settled()  # (the retry, brought forward)
            assert not service.refreshing
            assert {i.lead_id for i in service.items()} == set(ids)
            assert set(ids) <= {lead_id for names in told for lead_id in names}

        store.repository.leads_with_history = failing_read  # type: ignore[method-assign,assignment]
        asyncio.run(main())
    finally:
        store.close()


def test_a_lead_whose_derivation_fails_does_not_stop_the_bulk_refresh(tmp_path: Path) -> None:
    from app.store.repository import AppliedChanges

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(3)]

        async def main() -> None:
            service = _service(store)
            queue = service.work_queue
            prepare = queue.prepare

            def broken(lead: object, history: object, now: object) -> object:
                if lead.id == "lead-001":  # type: ignore[attr-defined]
                    raise ValueError("bad data")
                return prepare(lead, history, now)  # type: ignore[arg-type]

            queue.prepare = broken  # type: ignore[method-assign,assignment]
            store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
            ids = tuple(lead.id for lead in leads)
            service.applied(AppliedChanges(leads=ids, more=True))
            service.applied(AppliedChanges())
            await service.settled()
            assert not service.refreshing
            assert {i.lead_id for i in service.items()} == {"lead-000", "lead-002"}

        asyncio.run(main())
    finally:
        store.close()


def test_a_lead_the_store_says_is_gone_leaves_the_queue_when_asked_about(
    tmp_path: Path,
) -> None:
    """Out of the kept leads, while a bulk refresh waits: the row is still ranked, the store
    says removed. Asking about it takes it out and tells the listeners (not a lasting row
    whose detail raises)."""
    from dataclasses import replace

    import pytest

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n:03d}") for n in range(40)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")

        async def main() -> None:
            service = _service(store)
            told: list[tuple[str, ...]] = []
            service.on_changed(told.append)
            service.load()
            changes = store.repository.apply_changes([removed_change("lead-000")], "2")
            service.applied(replace(changes, more=True))  # the bulk download goes on
            assert service.item_for("lead-000") is not None  # still ranked: the refresh waits
            with pytest.raises(KeyError):
                service.detail("lead-000")
            assert "lead-000" not in service and service.item_for("lead-000") is None
            assert "lead-000" not in [i.lead_id for i in service.items()]
            await asyncio.sleep(0)
            assert told == [("lead-000",)]
            await service.settled()
            assert told == [("lead-000",)]

        asyncio.run(main())
    finally:
        store.close()


def test_after_a_failed_background_load_a_row_derived_when_asked_about_is_told(
    tmp_path: Path,
) -> None:
    from app.store.errors import StoreError

    store = open_local_store(tmp_path / "local.db", KEY)
    try:
        leads = [make_lead(f"lead-{n}") for n in range(3)]
        store.repository.apply_changes([lead_change(lead) for lead in leads], "1")
        first = _service(store)
        first.load()
        first.save_snapshot()
        # meanwhile lead-1 got a call: its row is no longer a new lead's
        store.repository.apply_changes([activity_change(make_call("lead-1"))], "2")

        def failing(agent_id: object) -> object:
            raise StoreError("database is locked")

        async def main() -> None:
            second = _service(store)
            told: list[tuple[str, ...]] = []
            second.on_changed(told.append)
            store.repository.queue_lead_ids = failing  # type: ignore[method-assign,assignment]
            second.load(background=True)
            await second.loaded()  # failed: the rows stay, derived when asked about
            before = second.item_for("lead-0")
            assert before is not None and before.kind is WorkKind.NEW_LEAD
            item = second.item_for("lead-1")
            assert item is not None and item.kind is not WorkKind.NEW_LEAD
            await asyncio.sleep(0)
            assert told == [("lead-1",)]  # the row that changed rank is named

        asyncio.run(main())
    finally:
        store.close()
