"""The first download and the full resync load GET /v1/snapshot: every lead the agent may see
with its whole history, a page a transaction, then the change feed from where it began.

What the change feed alone could not give, and these tests pin: a PC set up after the server
pruned its log, or one whose cursor fell behind it, still gets every lead's history (attempt caps
and cadences are counted from it, offline too); and a history logged while another agent held
the lead."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from app.domain.activities import Activity, ActivityKind
from app.domain.codec import activity_to_dict
from app.domain.leads import Channel
from app.services.actions import ActionResult
from app.services.workstation import Workstation
from app.sync.engine import Connectivity, Notice, NoticeKind, SyncStatus
from server.db import ChangeRow, LeadRow, transaction, utcnow
from server.hub import PRUNED, prune_changes
from server.services.blocks import add_block
from tests.app.sync.live import FAST_SYNC, Floor, LiveServer, wait_for


def _newest(live: LiveServer) -> int:
    with live.sessions() as session:
        return int(session.scalar(select(func.max(ChangeRow.seq))) or 0)


def _prune_everything(live: LiveServer) -> None:
    """The server's log kept nothing older than now (as after 30 days of retention)."""
    with transaction(live.sessions) as session:
        prune_changes(session, timedelta(0), utcnow() + timedelta(days=1))
    with live.sessions() as session:
        first = session.execute(
            select(ChangeRow.entity).order_by(ChangeRow.seq).limit(1)
        ).scalar_one()
    assert first == PRUNED


def _note(live: LiveServer, username: str, lead_id: str, text: str) -> str:
    """A note written on the server by another PC."""
    note = Activity(
        id=str(uuid.uuid4()),
        lead_id=lead_id,
        kind=ActivityKind.NOTE,
        at=utcnow(),
        agent_id=f"user-{username}",
        body=text,
    )
    reply = live.request(
        "POST",
        "/v1/activities",
        username,
        json=activity_to_dict(note),
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert reply.status_code == 201, reply.text
    return note.id


def _notes(workstation: object, lead_id: str) -> list[str]:
    history = workstation.store.repository.history(lead_id)  # type: ignore[attr-defined]
    return [a.body for a in history if a.kind is ActivityKind.NOTE]


def test_a_new_pc_loads_the_snapshot_with_histories_then_follows_the_feed(floor: Floor) -> None:
    live = floor.live
    seen: list[SyncStatus] = []

    async def main() -> None:
        lead_ids = [await asyncio.to_thread(live.post_lead, f"Snap{n}") for n in range(5)]
        for lead_id in lead_ids[:2]:
            await asyncio.to_thread(_note, live, "ana", lead_id, f"called {lead_id[:4]}")
        ana, faults = await floor.open(
            "ana", sync=replace(FAST_SYNC, snapshot_page_size=2), start=False
        )
        ana.engine.subscribe(seen.append)
        try:
            await ana.start()
            await wait_for(lambda: all(i in ana.queue for i in lead_ids), 10)
            await wait_for(lambda: ana.status.last_sync is not None, 10)  # rows come first
            assert "GET /v1/snapshot" in faults.seen
            assert faults.seen.count("GET /v1/snapshot") == 3  # 5 leads, 2 a page
            for lead_id in lead_ids[:2]:
                assert _notes(ana, lead_id) == [f"called {lead_id[:4]}"]
            assert int(ana.store.repository.cursor() or 0) == await asyncio.to_thread(_newest, live)
            # then the feed, from where the snapshot began
            later = await asyncio.to_thread(live.post_lead, "AfterSnapshot")
            await wait_for(lambda: later in ana.queue, 10)
        finally:
            await floor.close_all()

    asyncio.run(main())
    progress = [(s.snapshot_loaded, s.snapshot_total) for s in seen if s.snapshot_loaded]
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert seen[-1].snapshot_loaded is None


def test_a_pc_set_up_after_the_server_pruned_its_log_still_gets_every_history(
    floor: Floor,
) -> None:
    live = floor.live

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Pruned")
        await asyncio.to_thread(_note, live, "ana", lead_id, "left a voicemail")
        await asyncio.to_thread(_prune_everything, live)
        ana, _ = await floor.open("ana")
        try:
            await wait_for(lambda: lead_id in ana.queue, 10)
            assert _notes(ana, lead_id) == ["left a voicemail"]
            notices: list[Notice] = []
            ana.on_notice(notices.append)
            await asyncio.sleep(0.2)
            # no 410, no "reloaded" notice: a first download is not a resync
            assert not [n for n in notices if n.kind is NoticeKind.RESYNCED]
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_cursor_behind_the_pruned_log_resyncs_with_the_gaps_history(floor: Floor) -> None:
    live = floor.live

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Gap")
        ana, faults = await floor.open("ana")
        notices: list[Notice] = []
        try:
            await wait_for(lambda: lead_id in ana.queue, 10)
            await wait_for(lambda: ana.status.last_sync is not None, 10)  # rows come first
            faults.offline = True  # the PC is away longer than the server keeps its log
            await asyncio.to_thread(_note, live, "ana", lead_id, "written on another PC")
            await asyncio.to_thread(_prune_everything, live)
            ana.on_notice(notices.append)
            faults.offline = False
            ana.engine.pull_now()
            await wait_for(lambda: _notes(ana, lead_id) == ["written on another PC"], 10)
            await wait_for(lambda: any(n.kind is NoticeKind.RESYNCED for n in notices), 5)
            assert faults.seen.count("GET /v1/snapshot") == 2  # the first download, the resync
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_history_logged_while_another_agent_held_the_lead_comes_with_it(
    floor: Floor,
) -> None:
    live = floor.live

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Handed")
        reply = await asyncio.to_thread(
            live.request,
            "POST",
            f"/v1/leads/{lead_id}/assign",
            "mia",
            json={"agent_id": "user-ben"},
        )
        assert reply.status_code == 200, reply.text
        await asyncio.to_thread(_note, live, "ben", lead_id, "Ben: wants a test drive")
        reply = await asyncio.to_thread(
            live.request,
            "POST",
            f"/v1/leads/{lead_id}/assign",
            "mia",
            json={"agent_id": "user-ana"},
        )
        assert reply.status_code == 200, reply.text
        ana, _ = await floor.open("ana")
        try:
            await wait_for(lambda: lead_id in ana.queue, 10)
            assert _notes(ana, lead_id) == ["Ben: wants a test drive"]
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_download_cut_midway_starts_over_and_stores_nothing_twice(floor: Floor) -> None:
    live = floor.live

    async def main() -> None:
        lead_ids = [await asyncio.to_thread(live.post_lead, f"Cut{n}") for n in range(5)]
        for lead_id in lead_ids:
            await asyncio.to_thread(_note, live, "ana", lead_id, "first call")
        ana, faults = await floor.open(
            "ana", sync=replace(FAST_SYNC, snapshot_page_size=2), start=False
        )

        def cut(status: SyncStatus) -> None:
            if status.snapshot_loaded == 2 and faults.seen.count("GET /v1/snapshot") < 4:
                faults.offline = True  # the third page's request fails

        ana.engine.subscribe(cut)
        try:
            await ana.start()
            await wait_for(lambda: faults.offline, 10)
            await asyncio.sleep(0.3)
            assert ana.store.repository.cursor() is None  # not finished: nothing claims it is
            faults.offline = False
            ana.engine.pull_now()
            await wait_for(lambda: ana.store.repository.cursor() is not None, 10)
            await wait_for(lambda: all(i in ana.queue for i in lead_ids), 10)
            for lead_id in lead_ids:
                assert _notes(ana, lead_id) == ["first call"]
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_change_made_between_pages_arrives_by_the_feed(floor: Floor) -> None:
    """The feed goes on from the FIRST page's newest change: a note on a lead of page 1 written
    while later pages load is not lost between the two."""
    live = floor.live

    async def main() -> None:
        lead_ids = sorted([await asyncio.to_thread(live.post_lead, f"Mid{n}") for n in range(5)])
        ana, _ = await floor.open("ana", sync=replace(FAST_SYNC, snapshot_page_size=2), start=False)
        written: list[str] = []

        def write_between(status: SyncStatus) -> None:
            if status.snapshot_loaded == 2 and not written:
                # blocking on purpose: committed before the next page is asked for
                written.append(_note(live, "ana", lead_ids[0], "while loading"))

        ana.engine.subscribe(write_between)
        try:
            await ana.start()
            await wait_for(lambda: all(i in ana.queue for i in lead_ids), 10)
            await wait_for(lambda: _notes(ana, lead_ids[0]) == ["while loading"], 10)
        finally:
            await floor.close_all()

    asyncio.run(main())


def _store_and_phone(live: LiveServer, lead_id: str) -> tuple[str, str]:
    with live.sessions() as session:
        row = session.get(LeadRow, lead_id)
        assert row is not None and row.phone_e164
        return row.store_id, row.phone_e164


def _block(live: LiveServer, store_id: str, address: str, kind: str) -> None:
    with transaction(live.sessions) as session:
        assert add_block(session, store_id, address, kind, "a test")


def _addresses(workstation: Workstation) -> set[str]:
    return {block.address for block in workstation.store.repository.contact_blocks()}


def test_a_block_added_as_the_first_download_begins_is_kept(floor: Floor) -> None:
    """The block lists are read after the snapshot's `newest`: a block added before it is in
    them, one added after comes with the feed. (Read before the snapshot began, a block added
    in between was in neither.)"""
    live = floor.live
    stranger = f"+1312555{uuid.uuid4().int % 10000:04d}"

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Blocked")
        store_id, phone = await asyncio.to_thread(_store_and_phone, live, lead_id)
        ana, _ = await floor.open("ana", start=False)
        added: list[bool] = []

        def block_now(status: SyncStatus) -> None:
            if status.snapshot_loaded == 0 and not added:
                added.append(True)  # a STOP and a do-not-call entry land on the server
                _block(live, store_id, stranger, "opt_out")
                _block(live, store_id, phone, "dnc")

        ana.engine.subscribe(block_now)
        try:
            await ana.start()
            await wait_for(lambda: lead_id in ana.queue and ana.status.last_sync is not None, 10)
            assert added
            assert {stranger, phone} <= _addresses(ana)
            assert not ana.actions.check_contact(lead_id, Channel.CALL).allowed
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_resync_downloads_the_block_lists_again(floor: Floor) -> None:
    live = floor.live
    stranger = f"+1312555{uuid.uuid4().int % 10000:04d}"

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Away")
        store_id, phone = await asyncio.to_thread(_store_and_phone, live, lead_id)
        ana, faults = await floor.open("ana")
        notices: list[Notice] = []
        ana.on_notice(notices.append)
        try:
            await wait_for(lambda: lead_id in ana.queue, 10)
            await wait_for(lambda: ana.status.last_sync is not None, 10)  # rows come first
            faults.offline = True  # away longer than the server keeps its log
            await asyncio.to_thread(_block, live, store_id, stranger, "opt_out")
            await asyncio.to_thread(_block, live, store_id, phone, "dnc")
            await asyncio.to_thread(_prune_everything, live)
            faults.offline = False
            ana.engine.pull_now()
            await wait_for(lambda: any(n.kind is NoticeKind.RESYNCED for n in notices), 10)
            assert {stranger, phone} <= _addresses(ana)
            assert not ana.actions.check_contact(lead_id, Channel.CALL).allowed
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_lead_handed_away_and_back_while_pages_load_keeps_its_history(floor: Floor) -> None:
    """The feed replays the removal of a lead whose page, read later, holds a newer copy: the
    newer copy stays, with its history (purged, the attempts counted from it were lost)."""
    live = floor.live

    async def main() -> None:
        lead_ids = sorted([await asyncio.to_thread(live.post_lead, f"Hop{n}") for n in range(3)])
        target = lead_ids[-1]
        for lead_id in lead_ids:
            reply = await asyncio.to_thread(
                live.request,
                "POST",
                f"/v1/leads/{lead_id}/assign",
                "mia",
                json={"agent_id": "user-ana"},
            )
            assert reply.status_code == 200, reply.text
        await asyncio.to_thread(_note, live, "ana", target, "called them")
        ana, _ = await floor.open("ana", sync=replace(FAST_SYNC, snapshot_page_size=1), start=False)
        moved: list[bool] = []

        def hand_away_and_back(status: SyncStatus) -> None:
            if status.snapshot_loaded == 1 and not moved:
                moved.append(True)
                for agent in ("user-ben", "user-ana"):
                    reply = live.request(
                        "POST", f"/v1/leads/{target}/assign", "mia", json={"agent_id": agent}
                    )
                    assert reply.status_code == 200, reply.text

        ana.engine.subscribe(hand_away_and_back)
        try:
            await ana.start()
            await wait_for(lambda: all(i in ana.queue for i in lead_ids), 10)
            await wait_for(lambda: ana.status.last_sync is not None, 10)
            await asyncio.sleep(0.3)  # the feed after the snapshot has been applied
            assert moved and _notes(ana, target) == ["called them"]
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_claim_during_the_first_download_leaves_it_to_finish(floor: Floor) -> None:
    """The claim's answer is stored without a cursor: a download cut after it still starts
    over from the snapshot (a cursor "0" made the next pull replay the whole feed instead)."""
    live = floor.live

    async def main() -> None:
        lead_ids = sorted([await asyncio.to_thread(live.post_lead, f"Pool{n}") for n in range(4)])
        ana, faults = await floor.open(
            "ana", sync=replace(FAST_SYNC, snapshot_page_size=1), start=False
        )
        claims: list[asyncio.Future[ActionResult]] = []

        def claim_midway(status: SyncStatus) -> None:
            if status.snapshot_loaded == 1 and not claims:
                faults.delay_s = 0.3  # the download goes on slowly
                claims.append(asyncio.ensure_future(ana.actions.claim(lead_ids[0])))

        ana.engine.subscribe(claim_midway)
        try:
            await ana.start()
            await wait_for(lambda: bool(claims) and claims[0].done(), 10)
            assert claims[0].result().ok, claims[0].result().message
            assert ana.store.repository.cursor() is None
            faults.offline = True  # the download is cut
            await wait_for(lambda: ana.status.connectivity is Connectivity.OFFLINE, 10)
            assert ana.store.repository.cursor() is None
            asked = faults.seen.count("GET /v1/snapshot")
            faults.delay_s, faults.offline = 0.0, False
            ana.engine.pull_now()
            await wait_for(lambda: ana.status.connectivity is Connectivity.ONLINE, 10)
            assert faults.seen.count("GET /v1/snapshot") > asked  # started over
            assert all(i in ana.queue for i in lead_ids)
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_lead_handed_over_mid_shift_arrives_with_its_history(floor: Floor) -> None:
    """Not a download: the feed. The server sends the new holder the lead's earlier activities
    (they went to the previous holder's PC only), so the attempts already made count here."""
    live = floor.live

    async def main() -> None:
        lead_id = await asyncio.to_thread(live.post_lead, "Midshift")
        ana, _ = await floor.open("ana")
        try:
            await wait_for(lambda: ana.status.last_sync is not None, 10)
            for agent, note in (("user-ben", "Ben: left a voicemail"), ("user-ana", None)):
                reply = await asyncio.to_thread(
                    live.request,
                    "POST",
                    f"/v1/leads/{lead_id}/assign",
                    "mia",
                    json={"agent_id": agent},
                )
                assert reply.status_code == 200, reply.text
                if note:
                    await asyncio.to_thread(_note, live, "ben", lead_id, note)
            await wait_for(lambda: _notes(ana, lead_id) == ["Ben: left a voicemail"], 10)
        finally:
            await floor.close_all()

    asyncio.run(main())
