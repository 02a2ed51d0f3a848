"""Opt-outs reach every workstation of the store through the change feed and hold offline: an
inbound STOP on the server's SMS webhook makes the local compliance check refuse texting and
calling that number within a second, on every agent's PC, and still with the server stopped."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.domain.compliance import BlockCode
from app.domain.leads import Channel
from app.store.repository import Dataset
from tests.app.sync.live import LiveServer, wait_for

HOOK_TOKEN = "hook-secret-live"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server.db", webhook_token=HOOK_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.close()


def text_in(live: LiveServer, sender: str, body: str) -> None:
    answer = httpx.post(
        f"{live.base_url}/v1/webhooks/sms",
        data={"From": sender, "To": "+13125550100", "Body": body, "MessageSid": uuid.uuid4().hex},
        headers={"X-Webhook-Token": HOOK_TOKEN},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text


def opted_out(workstation: object, lead_id: str, channel: Channel) -> bool:
    decision = workstation.actions.check_contact(lead_id, channel)  # type: ignore[attr-defined]
    return not decision.allowed and any(r.code is BlockCode.OPTED_OUT for r in decision.reasons)


def refuses_both(workstation: object, lead_id: str) -> bool:
    return opted_out(workstation, lead_id, Channel.TEXT) and opted_out(
        workstation, lead_id, Channel.CALL
    )


def test_a_stop_refuses_texts_and_calls_locally_within_a_second_and_offline(floor) -> None:  # type: ignore[no-untyped-def]
    live: LiveServer = floor.live

    async def main() -> tuple[float, float]:
        ana, _ = await floor.open("ana")
        ben, _ = await floor.open("ben")
        try:
            lead_id = await asyncio.to_thread(live.post_lead, "Stoppable")
            await wait_for(lambda: lead_id in ana.queue or lead_id in ben.queue, 5)
            holder = ana if lead_id in ana.queue else ben
            lead = holder.store.repository.get_lead(lead_id)
            assert lead is not None and lead.primary_phone is not None
            number = lead.primary_phone.e164
            assert not opted_out(holder, lead_id, Channel.TEXT)
            assert not opted_out(holder, lead_id, Channel.CALL)

            # 1. The customer texts STOP: the holder's PC refuses both within a second.
            await asyncio.to_thread(text_in, live, number, "STOP")
            sent = time.monotonic()
            await wait_for(lambda: refuses_both(holder, lead_id), 1.0)
            first = time.monotonic() - sent

            # 2. A STOP from a number no lead has yet reaches every PC of the store; a lead that
            # arrives later with that number is refused on it, though the server's copy of the
            # lead says nothing of an opt-out.
            stranger = f"+1312555{uuid.uuid4().int % 10000:04d}"
            await asyncio.to_thread(text_in, live, stranger, "STOP")
            sent = time.monotonic()
            await wait_for(
                lambda: all(stranger in w.store.repository.opt_outs() for w in (ana, ben)), 1.0
            )
            second = time.monotonic() - sent
            late_id = await asyncio.to_thread(
                live.post_lead, "Latecomer", phones=[{"number": stranger, "kind": "cellphone"}]
            )
            await wait_for(lambda: late_id in ana.queue or late_id in ben.queue, 5)
            late_holder = ana if late_id in ana.queue else ben
            server_copy = await asyncio.to_thread(
                live.request, "GET", f"/v1/leads/{late_id}", "mia"
            )
            assert server_copy.status_code == 200, server_copy.text
            assert server_copy.json()["lead"]["opted_out_at"] is None
            # (The block's time is the server's; this PC's estimate of the server clock may
            # trail it by a fraction of a second, as for any opt-out.)
            await wait_for(lambda: refuses_both(late_holder, late_id), 1.0)

            # 3. The server stops: still refused, from the local lists alone.
            assert ana.store.repository.freshness(Dataset.OPT_OUTS) is not None
            await asyncio.to_thread(live.stop)
            for workstation in (ana, ben):
                workstation.engine.pull_now()
            await wait_for(lambda: holder.status.connectivity.value == "offline", 5)
            assert refuses_both(holder, lead_id)
            assert refuses_both(late_holder, late_id)
            return first, second
        finally:
            await floor.close_all()

    first, second = asyncio.run(main())
    print(
        f"STOP -> local refusal: {first * 1000:.0f} ms; unknown number on every PC: "
        f"{second * 1000:.0f} ms"
    )
