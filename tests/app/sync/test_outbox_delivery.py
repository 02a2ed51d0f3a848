"""The outbox reaches the server exactly once, in order, whatever the network does: the server
stopped mid-shift, injected 500s, replies lost after the server acted, slow replies, a refused
item (kept with its reason, never dropped), and an expired sign-in with a full outbox."""

from __future__ import annotations

import asyncio
from collections import Counter

from app.store.outbox import OutboxState
from app.sync.engine import Connectivity, Notice, NoticeKind
from tests.app.sync.live import PASSWORD, Floor, wait_for


async def _lead_in_store(floor: Floor, workstation: object, name: str) -> str:
    lead_id = await asyncio.to_thread(floor.live.post_lead, name)
    await wait_for(lambda: workstation.store.repository.get_lead(lead_id) is not None, 5)  # type: ignore[attr-defined]
    return lead_id


def test_server_stopped_mid_shift_200_actions_all_land_exactly_once(floor: Floor) -> None:
    async def main() -> None:
        workstation, _ = await floor.open("ana")
        try:
            lead_id = await _lead_in_store(floor, workstation, "Shift")
            await asyncio.to_thread(floor.live.stop)
            ids = []
            for n in range(200):
                result = await workstation.actions.add_note(lead_id, f"note {n}")
                assert result.ok
                ids.extend(result.activity_ids)
            await wait_for(lambda: workstation.status.connectivity is Connectivity.OFFLINE, 5)
            assert workstation.status.pending == 200
            last = await workstation.actions.add_note(lead_id, "while offline")
            assert last.queued and "will send when online" in last.message
            ids.extend(last.activity_ids)
            await asyncio.to_thread(floor.live.start)
            await wait_for(lambda: workstation.status.pending == 0, 30)
            on_server = Counter(floor.live.activity_ids(lead_id))
            assert all(on_server[i] == 1 for i in ids), "every action exactly once"
            assert len(on_server) == len(ids) == 201
            assert workstation.status.connectivity is Connectivity.ONLINE
            assert workstation.store.outbox.failed_items() == []
            # Confirmed locally too: the pulled copies replaced the pending ones.
            await wait_for(
                lambda: (
                    not any(
                        row.pending
                        for row in _pending_rows(workstation)  # type: ignore[arg-type]
                    )
                ),
                5,
            )
        finally:
            await floor.close_all()

    asyncio.run(main())


def _pending_rows(workstation: object) -> list[object]:
    from sqlalchemy import select

    from app.store.models import ActivityRow

    with workstation.store.read("test") as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(ActivityRow).where(ActivityRow.pending.is_(True))))


def test_500s_lost_replies_and_slow_replies_still_deliver_each_action_once(floor: Floor) -> None:
    async def main() -> None:
        workstation, faults = await floor.open("ana", api_timeout=0.5)
        try:
            lead_id = await _lead_in_store(floor, workstation, "Flaky")
            faults.fail_500 = 3
            faults.lose_reply = 3  # the server recorded it; the client never heard back
            ids = []
            for n in range(10):
                ids += (await workstation.actions.add_note(lead_id, f"flaky {n}")).activity_ids
            await wait_for(lambda: workstation.status.pending == 0, 20)
            assert faults.fail_500 == 0 and faults.lose_reply == 0
            # Slow: replies held longer than the client's timeout, then normal again.
            faults.delay_writes_s = 0.8
            ids += (await workstation.actions.add_note(lead_id, "slow")).activity_ids
            await wait_for(lambda: "did not answer" in workstation.status.last_error, 5)
            assert workstation.status.pending == 1
            faults.delay_writes_s = 0.0
            await wait_for(lambda: workstation.status.pending == 0, 10)
            on_server = Counter(floor.live.activity_ids(lead_id))
            assert sorted(on_server) == sorted(ids)
            assert set(on_server.values()) == {1}
            # The notes reached the server in the order they were written.
            posted = [s for s in faults.seen if s == "POST /v1/activities"]
            assert len(posted) >= 11
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_refused_action_is_kept_with_the_reason_and_does_not_block_others(floor: Floor) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        workstation.on_notice(notices.append)
        try:
            lead_id = await _lead_in_store(floor, workstation, "Refused")
            bad = await workstation.actions.pause("nap")  # not a pause reason the server knows
            good = await workstation.actions.add_note(lead_id, "still lands")
            await wait_for(lambda: workstation.status.pending == 0, 10)
            failed = workstation.store.outbox.failed_items()
            assert [item.id for item in failed] == list(bad.outbox_ids)
            assert failed[0].state is OutboxState.FAILED and failed[0].failed_status == 422
            assert "reason" in (failed[0].last_error or "")
            assert workstation.status.failed == 1
            assert any(n.kind is NoticeKind.REFUSED and "reason" in n.message for n in notices)
            assert floor.live.activity_ids(lead_id) == list(good.activity_ids)
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_an_expired_sign_in_keeps_the_full_outbox_until_the_password_is_given(
    floor: Floor,
) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        workstation.on_notice(notices.append)
        try:
            lead_id = await _lead_in_store(floor, workstation, "Expiry")
            # The token is revoked on the server (as when it expires).
            revoked = await asyncio.to_thread(
                lambda: __import__("httpx").post(
                    f"{floor.live.base_url}/v1/auth/revoke",
                    headers={"Authorization": f"Bearer {workstation.account.token}"},
                    timeout=10,
                )
            )
            assert revoked.status_code == 204
            ids = []
            for n in range(20):
                ids += (
                    await workstation.actions.add_note(lead_id, f"after expiry {n}")
                ).activity_ids
            await wait_for(
                lambda: workstation.status.connectivity is Connectivity.SIGN_IN_EXPIRED, 5
            )
            await asyncio.sleep(0.3)
            assert workstation.status.pending == 20
            assert floor.live.activity_ids(lead_id) == []
            assert [n.kind for n in notices].count(NoticeKind.SIGN_IN_EXPIRED) == 1
            await workstation.sign_in_again(PASSWORD)
            await wait_for(lambda: workstation.status.pending == 0, 10)
            assert sorted(floor.live.activity_ids(lead_id)) == sorted(ids)
            await wait_for(lambda: workstation.status.connectivity is Connectivity.ONLINE, 5)
        finally:
            await floor.close_all()

    asyncio.run(main())
