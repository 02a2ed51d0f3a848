"""Compliance when the network misbehaves: the law holds at the moment of sending, not only when
the agent clicked. A text queued offline never reaches a customer who opted out meanwhile, and a
STOP in the middle of a cadence ends every pending step on every channel, on the server and on
the agent's PC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from app.domain.leads import Channel
from app.sync.engine import Connectivity, NoticeKind
from server.db import ChangeRow
from tests.app.sync.live import Floor, LiveServer, wait_for

HOOK_TOKEN = "hook-secret-compliance"
CHICAGO = ZoneInfo("America/Chicago")


def daytime_clock() -> tuple[Any, timedelta]:
    """A server clock that runs at real speed from noon in Chicago (whenever CI runs, texting
    is legal by the clock, so only the opt-out can stop a text)."""
    real = datetime.now(UTC)
    local = real.astimezone(CHICAGO)
    if time(10) <= local.time() <= time(18):
        shift = timedelta(0)
    else:
        noon = datetime.combine(local.date() + timedelta(days=1), time(12), CHICAGO)
        shift = noon.astimezone(UTC) - real
    return (lambda: datetime.now(UTC) + shift), shift


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    live = LiveServer(tmp_path / "server.db", webhook_token=HOOK_TOKEN)
    live.start()
    clock, _shift = daytime_clock()
    live.set_clock(clock)
    try:
        yield Floor(live, tmp_path)
    finally:
        live.close()


def consenting_lead(live: LiveServer, first: str, at: datetime) -> tuple[str, str]:
    number = f"+1312555{uuid.uuid4().int % 10000:04d}"
    lead_id = live.post_lead(
        first,
        phones=[{"number": number, "kind": "cellphone"}],
        consents=[
            {
                "channel": "text",
                "scope": "marketing",
                "granted_at": (at - timedelta(hours=1)).isoformat(),
                "method": "website form checkbox",
                "text": "I agree to receive texts about my inquiry. Reply STOP to opt out.",
            }
        ],
    )
    return lead_id, number


def text_in(live: LiveServer, sender: str, body: str) -> None:
    answer = httpx.post(
        f"{live.base_url}/v1/webhooks/sms",
        data={"From": sender, "To": "+13125550100", "Body": body, "MessageSid": uuid.uuid4().hex},
        headers={"X-Webhook-Token": HOOK_TOKEN},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text


def messages_to(live: LiveServer, lead_id: str) -> list[dict[str, Any]]:
    listed = live.request("GET", "/v1/messages", "mia", params={"lead_id": lead_id})
    assert listed.status_code == 200, listed.text
    return [m for m in listed.json() if m["direction"] == "outbound"]


def server_cadence(live: LiveServer, lead_id: str) -> dict[str, Any]:
    """The cadence as the server last published it with the lead (what every client shows)."""
    with live.sessions() as session:
        published = session.scalars(
            select(ChangeRow)
            .where(ChangeRow.entity == "lead", ChangeRow.entity_id == lead_id)
            .order_by(ChangeRow.seq.desc())
        ).first()
        assert published is not None
        return dict(published.data["cadence"])


def test_a_text_queued_offline_is_refused_when_the_customer_opted_out_meanwhile(
    floor: Floor,
) -> None:
    live = floor.live

    async def main() -> tuple[list[Any], list[dict[str, Any]], bool]:
        ana, faults = await floor.open("ana")
        notices: list[Any] = []
        ana.on_notice(notices.append)
        try:
            lead_id, number = await asyncio.to_thread(
                consenting_lead, live, "Consenting", ana.now()
            )
            await wait_for(lambda: lead_id in ana.queue, 5)
            assert ana.actions.check_contact(lead_id, Channel.TEXT).allowed

            faults.offline = True
            ana.engine.pull_now()
            await wait_for(lambda: ana.status.connectivity is Connectivity.OFFLINE, 5)
            queued = await ana.actions.send_text(lead_id, "Hi! The RAV4 you asked about is in.")
            assert queued.ok and queued.queued, queued.message

            # While this PC is offline the customer texts STOP to the dealership.
            await asyncio.to_thread(text_in, live, number, "Stop texting me please")

            faults.offline = False
            ana.engine.pull_now()
            await wait_for(lambda: ana.status.pending == 0 and ana.status.failed == 1, 10)
            still_allowed = ana.actions.check_contact(lead_id, Channel.TEXT).allowed
            sent = await asyncio.to_thread(messages_to, live, lead_id)
            return notices, sent, still_allowed
        finally:
            await floor.close_all()

    notices, sent, still_allowed = asyncio.run(main())
    refused = [n for n in notices if n.kind is NoticeKind.REFUSED]
    assert len(refused) == 1
    assert "opt" in refused[0].message.lower(), refused[0].message
    # Nothing went to the customer but the one confirmation of the opt-out.
    assert [m["template_id"] for m in sent] == ["opt_out_confirmation"], sent
    assert not still_allowed
    print(f"[compliance: offline text after STOP] refused={len(refused)}, texts_sent=0")


def test_a_stop_mid_cadence_cancels_every_pending_step_on_every_channel(floor: Floor) -> None:
    live = floor.live

    async def main() -> tuple[int, dict[str, Any], Any, dict[str, bool]]:
        ana, _faults = await floor.open("ana")
        try:
            lead_id, number = await asyncio.to_thread(consenting_lead, live, "Midway", ana.now())
            await wait_for(lambda: lead_id in ana.queue, 5)
            before = ana.queue.detail(lead_id).plan
            pending_before = len(before.next_steps) if before is not None else 0
            # The agent works the lead (a call, no answer): the cadence is under way.
            logged = await ana.actions.log_disposition(lead_id, "no_answer")
            assert logged.ok, logged.message

            await asyncio.to_thread(text_in, live, number, "STOP")
            await wait_for(lambda: not ana.actions.check_contact(lead_id, Channel.TEXT).allowed, 5)
            server = await asyncio.to_thread(server_cadence, live, lead_id)
            after = ana.queue.detail(lead_id).plan if lead_id in ana.queue else None
            allowed = {
                channel.value: ana.actions.check_contact(lead_id, channel).allowed
                for channel in (Channel.CALL, Channel.TEXT, Channel.EMAIL)
            }
            return pending_before, server, after, allowed
        finally:
            await floor.close_all()

    pending_before, cadence, local_plan, allowed = asyncio.run(main())
    assert pending_before > 3  # calls, texts and e-mails were planned
    assert cadence["next_steps"] == [], cadence
    assert cadence["state"] != "active", cadence
    assert local_plan is None or local_plan.next_steps == ()
    assert allowed == {"call": False, "text": False, "email": False}
    print(
        f"[compliance: STOP mid-cadence] steps_before={pending_before}, steps_after=0, "
        f"channels_blocked=3 (server cadence state: {cadence['state']})"
    )
