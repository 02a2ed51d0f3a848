"""The use cases against a real lead API: dispositions advance the cadence at once and return
the next work item, messages queue visibly offline, two agents editing one field, a lead
reassigned while the agent was offline, claiming from the pool, session-only mode, the server
clock offset, and the encrypted database on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from keyring.backends import fail

from app.domain.leads import Channel, LeadStatus
from app.domain.priority import WorkKind
from app.services.actions import CallRecord
from app.services.conflicts import Choice
from app.services.workstation import SESSION_ONLY_MESSAGE, WorkstationConfig, build_workstation
from app.store.outbox import OutboxKind
from app.store.repository import Dataset
from app.sync.engine import Connectivity, Notice, NoticeKind
from app.sync.signin import SignInService
from tests.app.sync.live import PASSWORD, Faults, Floor, rulebook, wait_for


async def go_offline(workstation: object, faults: Faults) -> None:
    """Cut the network at the edge and wait until the engine has noticed."""
    faults.offline = True
    workstation.engine.pull_now()  # type: ignore[attr-defined]
    await wait_for(
        lambda: workstation.status.connectivity is Connectivity.OFFLINE,  # type: ignore[attr-defined]
        5,
    )


async def _lead(floor: Floor, workstation: object, name: str, **extra: object) -> str:
    lead_id = await asyncio.to_thread(floor.live.post_lead, name, **extra)
    await wait_for(lambda: lead_id in workstation.queue, 5)  # type: ignore[attr-defined]
    return lead_id


def test_a_disposition_moves_the_cadence_at_once_and_returns_the_next_item(floor: Floor) -> None:
    async def main() -> None:
        workstation, faults = await floor.open("ana")
        try:
            first = await _lead(floor, workstation, "First")
            second = await _lead(floor, workstation, "Second")
            before = workstation.queue.item_for(first)
            assert before is not None and before.action == "Call #1"
            await go_offline(workstation, faults)  # the result must not wait for the network
            now = workstation.now()
            call = CallRecord("+13125550100", now - timedelta(seconds=40), now, answered=False)
            result = await workstation.actions.log_disposition(first, "no_answer", call=call)
            assert result.ok and result.queued and "will send when online" in result.message
            assert len(result.activity_ids) == 2  # the call and its disposition
            assert result.lead_item is not None and result.lead_item.kind is not WorkKind.NEW_LEAD
            assert result.next_text
            assert result.next_item is not None and result.next_item.lead_id == second
            history = {a.id: a for a in workstation.store.repository.history(first)}
            assert [history[i].kind.value for i in result.activity_ids] == ["call", "disposition"]
            faults.offline = False
            await wait_for(lambda: workstation.status.pending == 0, 10)
            assert set(result.activity_ids) <= set(floor.live.activity_ids(first, kind=None))
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_do_not_contact_wins_locally_at_once(floor: Floor) -> None:
    async def main() -> None:
        workstation, faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Stop")
            await go_offline(workstation, faults)
            result = await workstation.actions.log_disposition(lead_id, "do_not_contact")
            assert result.lead_item is None  # out of the queue's work at once
            lead = workstation.store.repository.get_lead(lead_id)
            assert lead is not None and lead.do_not_call
            assert lead.status is LeadStatus.DO_NOT_CONTACT
            decision = workstation.actions.check_contact(lead_id, Channel.CALL)
            assert not decision.allowed
            refused = await workstation.actions.send_email(lead_id, "Hello", "Still there?")
            assert not refused.ok and workstation.store.outbox.open_items(lead_id)[-1].kind is (
                OutboxKind.ACTIVITY
            )
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_offline_emails_queue_visibly_and_send_when_back(floor: Floor) -> None:
    async def main() -> None:
        workstation, faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Mailer")
            await go_offline(workstation, faults)
            result = await workstation.actions.send_email(lead_id, "Your RAV4", "It is here.")
            assert result.ok and result.queued
            assert result.message == "E-mail will send when online"
            waiting = workstation.store.outbox.open_items(lead_id)
            assert [i.kind for i in waiting] == [OutboxKind.MESSAGE]
            # Shown in the lead's history at once, pending.
            assert any(
                a.id == result.activity_ids[0]
                for a in workstation.store.repository.history(lead_id)
            )
            faults.offline = False
            await wait_for(lambda: workstation.status.pending == 0, 10)
            listed = await asyncio.to_thread(
                floor.live.request, "GET", "/v1/messages", "ana", params={"lead_id": lead_id}
            )
            assert listed.status_code == 200
            assert [m["id"] for m in listed.json()] == [result.activity_ids[0]]
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_calls_offline_are_allowed_only_while_the_blocklists_are_fresh(floor: Floor) -> None:
    async def main() -> None:
        workstation, faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Fresh")
            await go_offline(workstation, faults)
            fresh = workstation.actions.check_contact(lead_id, Channel.CALL)
            assert "lists were last updated" not in fresh.message
            stale_at = workstation.now() - timedelta(hours=2)
            # Fresh leads do not vouch for the block lists: the lists' own age decides.
            workstation.store.repository.set_freshness(Dataset.LEADS, workstation.now())
            workstation.store.repository.set_freshness(Dataset.DNC, stale_at)
            stale = workstation.actions.check_contact(lead_id, Channel.CALL)
            assert not stale.allowed
            assert "lists were last updated 120 min ago" in stale.message
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_two_agents_edit_the_same_field_both_values_are_kept_and_the_agent_chooses(
    floor: Floor,
) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        ana, _ = await floor.open("ana")
        ben, _ = await floor.open("ben")
        ana.on_notice(notices.append)
        try:
            lead_id = await _lead(floor, ana, "Edited")
            await wait_for(lambda: lead_id in ben.queue, 5)
            # Ana edits the same version before Ben's change reaches her.
            await ana.engine.stop()
            await ben.actions.edit_lead(lead_id, {"comments": "Ben: wants blue"})
            await wait_for(lambda: ben.status.pending == 0, 5)
            await ana.actions.edit_lead(lead_id, {"comments": "Ana: wants red"})
            await ana.engine.push_once()
            assert ben.conflicts.pending() == [], ben.store.outbox.failed_items()
            conflicts = ana.conflicts.pending(lead_id)
            assert len(conflicts) == 1
            conflict = conflicts[0]
            assert (conflict.field, conflict.mine, conflict.theirs) == (
                "comments",
                "Ana: wants red",
                "Ben: wants blue",
            )
            assert "keep yours or take theirs" in conflict.prompt
            assert any(n.kind is NoticeKind.CONFLICT for n in notices)
            lead = ana.store.repository.get_lead(lead_id)
            assert lead is not None and lead.comments == "Ben: wants blue"  # theirs, until chosen
            resolution = await ana.conflicts.resolve(conflict.id, Choice.KEEP_MINE)
            assert resolution.outbox_id is not None
            await ana.engine.push_once()
            assert ana.conflicts.pending() == []
            server = await asyncio.to_thread(
                floor.live.request, "GET", f"/v1/leads/{lead_id}", "ben"
            )
            assert server.json()["lead"]["comments"] == "Ana: wants red"
            assert ana.store.outbox.failed_items() == []
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_taking_theirs_drops_my_edit(floor: Floor) -> None:
    async def main() -> None:
        ana, _ = await floor.open("ana", start=False)
        try:
            await ana.engine.pull_once()
            lead_id = await asyncio.to_thread(floor.live.post_lead, "Theirs")
            await ana.engine.pull_once()
            ana.queue.load()
            await ana.actions.edit_lead(lead_id, {"timeframe": {"description": "Next year"}})
            changed = await asyncio.to_thread(
                floor.live.request,
                "PATCH",
                f"/v1/leads/{lead_id}",
                "ben",
                json={"base_version": 1, "timeframe": {"description": "Today"}},
            )
            assert changed.status_code == 200, changed.text
            await ana.engine.push_once()
            (conflict,) = ana.conflicts.pending(lead_id)
            await ana.conflicts.resolve(conflict.id, Choice.TAKE_THEIRS)
            assert ana.conflicts.pending() == [] and ana.store.outbox.pending_count() == 0
            lead = ana.store.repository.get_lead(lead_id)
            assert lead is not None and lead.timeframe.description == "Today"
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_lead_reassigned_while_offline_leaves_the_queue_with_a_notice(floor: Floor) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        ana, faults = await floor.open("ana")
        ana.on_notice(notices.append)
        try:
            lead_id = await _lead(floor, ana, "Moved")
            claimed = await ana.actions.claim(lead_id)
            assert claimed.ok, claimed.message
            await go_offline(ana, faults)
            note = await ana.actions.add_note(lead_id, "called from my cell, left a message")
            assert note.queued
            moved = await asyncio.to_thread(
                floor.live.request,
                "POST",
                f"/v1/leads/{lead_id}/assign",
                "mia",
                json={"agent_id": "user-ben"},
            )
            assert moved.status_code == 200, moved.text
            faults.offline = False
            await wait_for(lambda: lead_id not in ana.queue, 5)
            assert any(n.kind is NoticeKind.LEAD_REMOVED and n.lead_id == lead_id for n in notices)
            await wait_for(lambda: ana.status.pending == 0, 5)
            # Nothing is dropped: the note either landed or is kept with the server's reason.
            landed = note.activity_ids[0] in floor.live.activity_ids(lead_id)
            failed = ana.store.outbox.failed_items()
            assert landed or failed, ana.store.outbox.get(note.outbox_ids[0])
            assert landed or [i.idempotency_key for i in failed] == list(note.activity_ids)
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_activities_logged_offline_on_a_reassigned_lead_still_land(floor: Floor) -> None:
    async def main() -> None:
        ana, faults = await floor.open("ana")
        try:
            lead_id = await _lead(floor, ana, "Landed")
            assert (await ana.actions.claim(lead_id)).ok
            faults.offline = True
            note = await ana.actions.add_note(lead_id, "left a message")
            await asyncio.to_thread(
                floor.live.request,
                "POST",
                f"/v1/leads/{lead_id}/assign",
                "mia",
                json={"agent_id": "user-ben"},
            )
            faults.offline = False
            await wait_for(lambda: ana.status.pending == 0, 5)
            assert note.activity_ids[0] in floor.live.activity_ids(lead_id)
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_claiming_a_pool_lead_needs_the_server_and_first_claim_wins(floor: Floor) -> None:
    async def main() -> None:
        ana, faults = await floor.open("ana")
        ben, _ = await floor.open("ben")
        try:
            lead_id = await _lead(floor, ana, "Pool")
            await wait_for(lambda: lead_id in ben.queue, 5)
            await go_offline(ana, faults)
            offline = await ana.actions.claim(lead_id)
            assert not offline.ok and "needs a connection" in offline.message
            faults.offline = False
            await wait_for(lambda: ana.status.connectivity is Connectivity.ONLINE, 5)
            assert (await ana.actions.claim(lead_id)).ok
            lead = ana.store.repository.get_lead(lead_id)
            assert lead is not None and lead.assigned_agent_id == "user-ana"
            late = await ben.actions.claim(lead_id)
            assert not late.ok and "somebody else" in late.message
            await wait_for(lambda: lead_id not in ben.queue, 5)  # not Ben's any more
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_pool_lead_can_be_claimed_while_the_first_download_is_still_going(
    floor: Floor,
) -> None:
    """Catching up (syncing) is not offline: the claim is tried, and wins."""

    async def main() -> None:
        lead_id = await asyncio.to_thread(floor.live.post_lead, "Early")
        ana, faults = await floor.open("ana", start=False)
        try:
            faults.delay_s = 0.4  # a slow link: the first download takes a while
            await ana.start()
            await wait_for(lambda: lead_id in ana.queue, 10)
            assert ana.status.connectivity is Connectivity.SYNCING
            claimed = await ana.actions.claim(lead_id)
            assert claimed.ok, claimed.message
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_pause_and_resume_reach_the_server(floor: Floor) -> None:
    async def main() -> None:
        ana, _ = await floor.open("ana")
        try:
            assert (await ana.actions.pause("lunch")).ok
            await wait_for(lambda: ana.status.pending == 0, 5)
            floor_view = await asyncio.to_thread(floor.live.request, "GET", "/v1/floor", "mia")
            states = {a["user_id"]: a for a in floor_view.json()["agents"]}
            assert states["user-ana"]["state"] == "paused"
            assert (await ana.actions.resume()).ok
            await wait_for(lambda: ana.status.pending == 0, 5)
            floor_view = await asyncio.to_thread(floor.live.request, "GET", "/v1/floor", "mia")
            states = {a["user_id"]: a for a in floor_view.json()["agents"]}
            assert states["user-ana"]["state"] == "available"
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_the_database_file_is_unreadable_and_holds_no_lead_names(
    floor: Floor, tmp_path: Path
) -> None:
    async def main() -> Path:
        ana, _ = await floor.open("ana")
        try:
            lead_id = await asyncio.to_thread(floor.live.post_lead, "Bartholomew", "Wolfeschlegel")
            await wait_for(lambda: lead_id in ana.queue, 5)
            assert ana.store.path is not None
            return ana.store.path
        finally:
            await floor.close_all()

    path = asyncio.run(main())
    assert path.is_relative_to(tmp_path / "data-ana")
    files = list(path.parent.iterdir())
    for file in files:
        data = file.read_bytes()
        assert b"Bartholomew" not in data and b"Wolfeschlegel" not in data
        assert "Wolfeschlegel".encode("utf-16-le") not in data
    connection = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            connection.execute("SELECT name FROM sqlite_master").fetchall()
    finally:
        connection.close()


def test_without_a_secure_keyring_it_runs_session_only_and_says_so(
    floor: Floor, tmp_path: Path
) -> None:
    async def main() -> None:
        signin = SignInService.open(floor.live.base_url, keyring_backend=fail.Keyring())
        assert not signin.secure
        account = await signin.sign_in("ana", PASSWORD)
        config = WorkstationConfig(server_url=floor.live.base_url, data_dir=tmp_path / "none")
        workstation = build_workstation(config, account, signin, rulebook())
        try:
            assert workstation.session_only and workstation.storage_message == SESSION_ONLY_MESSAGE
            await workstation.start()
            lead_id = await asyncio.to_thread(floor.live.post_lead, "Ephemeral")
            await wait_for(lambda: lead_id in workstation.queue, 5)
        finally:
            await workstation.close()
        assert not (tmp_path / "none").exists()

    asyncio.run(main())


def test_countdowns_use_the_servers_clock_when_the_pc_clock_is_wrong(floor: Floor) -> None:
    async def main() -> None:
        faults = Faults(clock_ahead_s=420.0)  # this PC runs 7 minutes slow
        ana, _ = await floor.open("ana", faults=faults)
        try:
            await wait_for(lambda: ana.status.last_sync is not None, 5)
            offset = ana.api.clock_offset.total_seconds()
            assert 419 < offset < 421.5
            drift = (ana.now() - datetime.now(UTC)).total_seconds()
            assert 419 < drift < 421.5
            assert 419 < ana.store.repository.sync_state().server_offset_s < 421.5
        finally:
            await floor.close_all()

    asyncio.run(main())
