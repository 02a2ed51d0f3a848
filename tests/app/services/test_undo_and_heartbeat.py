"""Undo of a disposition (held in the outbox for a few seconds, then gone without a trace, or too
late once sent), a dialer's call record logged with its disposition, and presence heartbeats —
against a real lead API."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from sqlalchemy import select

from app.domain.activities import ActivityKind
from app.domain.leads import Channel
from app.telephony.model import CallDialing, CallEnded, EndCause
from app.telephony.record import CallRecord
from server.db import PresenceRow
from tests.app.services.test_workstation import _lead
from tests.app.sync.live import Floor, wait_for


def test_undo_within_the_window_takes_the_disposition_back_before_the_server_sees_it(
    floor: Floor,
) -> None:
    async def main() -> None:
        workstation, _faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Undone")
            before = workstation.queue.item_for(lead_id)
            history_before = workstation.store.repository.history(lead_id)
            result = await workstation.actions.log_disposition(
                lead_id, "no_answer", undo_window=timedelta(seconds=3), channel=Channel.CALL
            )
            assert len(result.activity_ids) == 2  # dialled on a desk phone: call + outcome
            assert result.ok and result.undo_token and result.undo_until is not None
            assert workstation.queue.item_for(lead_id) != before  # the cadence moved at once
            await asyncio.sleep(0.6)  # the engine is running: it must hold the items back
            assert workstation.status.pending == 2
            assert floor.live.activity_ids(lead_id, kind="disposition") == []
            undone = await workstation.actions.undo_disposition(result.undo_token)
            assert undone.ok, undone.message
            assert workstation.queue.item_for(lead_id) == before
            assert workstation.store.repository.history(lead_id) == history_before
            assert workstation.status.pending == 0
            assert not workstation.store.outbox.open_items(lead_id)
            again = await workstation.actions.undo_disposition(result.undo_token)
            assert not again.ok  # once only
            await asyncio.sleep(3.5)  # past the window: nothing was sent
            assert floor.live.activity_ids(lead_id, kind="disposition") == []
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_undo_is_refused_once_the_disposition_was_sent(floor: Floor) -> None:
    async def main() -> None:
        workstation, _faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Sent")
            result = await workstation.actions.log_disposition(
                lead_id, "busy", undo_window=timedelta(milliseconds=200)
            )
            assert result.undo_token
            # the hold (window + margin) ends, then the sender delivers it exactly once
            await wait_for(lambda: workstation.status.pending == 0, 10)
            assert len(floor.live.activity_ids(lead_id, kind="disposition")) == 1
            undone = await workstation.actions.undo_disposition(result.undo_token)
            assert not undone.ok and "too late" in undone.message
            kinds = [a.kind for a in workstation.store.repository.history(lead_id)]
            assert ActivityKind.DISPOSITION in kinds
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_dialer_call_record_is_logged_with_its_disposition(floor: Floor) -> None:
    async def main() -> None:
        workstation, _faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Caller")
            now = workstation.now()
            dialing = CallDialing(
                "call-1", now - timedelta(seconds=30), "+13125550199", lead_id, "x"
            )
            ended = CallEnded(
                "call-1",
                now,
                EndCause.HANDED_OFF,
                "",
                started_at=dialing.at,
                answered_at=None,
            )
            record = CallRecord.from_events([dialing, ended], ended_at=now)
            assert record.answered is None  # a hand-off cannot tell
            result = await workstation.actions.log_disposition(
                lead_id, "contacted_not_ready", call=record
            )
            history = {a.id: a for a in workstation.store.repository.history(lead_id)}
            call = history[result.activity_ids[0]]
            assert call.kind is ActivityKind.CALL and call.answered is True  # from the outcome
            assert dataclasses.replace(record, answered=True).duration_s == call.duration_s
            await wait_for(lambda: workstation.status.pending == 0, 10)
            assert set(result.activity_ids) <= set(floor.live.activity_ids(lead_id, kind=None))
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_heartbeats_keep_the_agent_on_the_floor(floor: Floor) -> None:
    async def main() -> None:
        workstation, _faults = await floor.open("ana")
        assert workstation.heartbeats == 0  # off unless configured (the program sets 30 s)
        workstation.start_heartbeats(0.3)
        try:
            await wait_for(lambda: workstation.heartbeats >= 1, 5)  # one at start
            with floor.live.sessions() as session:
                first = session.scalar(
                    select(PresenceRow.last_heartbeat).where(
                        PresenceRow.user_id == workstation.account.user_id
                    )
                )
            assert first is not None
            await wait_for(lambda: workstation.heartbeats >= 3, 5)
            with floor.live.sessions() as session:
                later = session.scalar(
                    select(PresenceRow.last_heartbeat).where(
                        PresenceRow.user_id == workstation.account.user_id
                    )
                )
            assert later is not None and later > first
        finally:
            await floor.close_all()
        beats = workstation.heartbeats
        await asyncio.sleep(0.5)
        assert workstation.heartbeats == beats  # closed: no more

    asyncio.run(main())
