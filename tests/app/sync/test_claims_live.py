"""Claims seen from the other PCs: a pool lead one agent claims leaves every other agent's
queue within a second, without a notice — unless that agent had work waiting on it, which still
lands and comes with a notice."""

from __future__ import annotations

import asyncio
import time

from app.sync.engine import Notice, NoticeKind
from tests.app.sync.live import Floor, wait_for


async def _pool_lead(floor: Floor, *workstations: object, name: str) -> str:
    lead_id = await asyncio.to_thread(floor.live.post_lead, name)
    for workstation in workstations:
        await wait_for(lambda w=workstation: lead_id in w.queue, 5)  # type: ignore[attr-defined]
    return lead_id


def test_a_claimed_pool_lead_leaves_the_other_agents_queue_quietly(floor: Floor) -> None:
    notices: list[Notice] = []

    async def main() -> float:
        ana, _ = await floor.open("ana")
        ben, _ = await floor.open("ben")
        ben.on_notice(notices.append)
        try:
            lead_id = await _pool_lead(floor, ana, ben, name="Pooled")
            claimed_at = time.monotonic()
            assert (await ana.actions.claim(lead_id)).ok
            await wait_for(lambda: lead_id not in ben.queue, 1.0)
            gone = time.monotonic() - claimed_at
            assert ben.store.repository.stored_lead(lead_id) is None
            # Ana keeps it, as hers.
            await asyncio.sleep(0.3)  # her own pull of the same changes has run by now
            assert lead_id in ana.queue
            lead = ana.store.repository.get_lead(lead_id)
            assert lead is not None and lead.assigned_agent_id == "user-ana"
            assert not [n for n in notices if n.kind is NoticeKind.LEAD_REMOVED]
            return gone
        finally:
            await floor.close_all()

    gone = asyncio.run(main())
    print(f"claim -> gone from the other agent's queue: {gone * 1000:.0f} ms")


def test_work_waiting_on_a_claimed_pool_lead_still_lands_with_a_notice(floor: Floor) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        ana, _ = await floor.open("ana")
        ben, ben_faults = await floor.open("ben")
        ben.on_notice(notices.append)
        try:
            lead_id = await _pool_lead(floor, ana, ben, name="Contested")
            ben_faults.offline = True
            note = await ben.actions.add_note(lead_id, "customer called the desk about it")
            assert (await ana.actions.claim(lead_id)).ok
            ben_faults.offline = False
            await wait_for(lambda: lead_id not in ben.queue, 5)
            await wait_for(lambda: ben.status.pending == 0, 5)
            assert note.activity_ids[0] in floor.live.activity_ids(lead_id)
            assert ben.store.outbox.failed_items() == []
            removed = [n for n in notices if n.kind is NoticeKind.LEAD_REMOVED]
            assert [n.lead_id for n in removed] == [lead_id]
            assert "taken from the pool by Ana" in removed[0].message
            await wait_for(lambda: ben.store.repository.stored_lead(lead_id) is None, 5)
        finally:
            await floor.close_all()

    asyncio.run(main())
