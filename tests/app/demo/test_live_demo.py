"""The live demo: the seeded lead API in this process, and the simulator feeding it new leads,
hot ones, duplicates, after-hours ones and customer texts (with a STOP) through the real intake and
SMS webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.demo.live import start_demo_server
from app.demo.simulator import EventKind, LeadSimulator, quiet_now


def test_the_demo_server_and_simulator_work_through_the_real_api(tmp_path: Path) -> None:
    demo = start_demo_server(tmp_path, leads=30)
    try:
        token = httpx.post(
            f"{demo.base_url}/v1/auth/token",
            json={"username": demo.username, "password": demo.password},
            timeout=20,
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        async def feed() -> LeadSimulator:
            sim = LeadSimulator(demo.base_url, demo.api_key, webhook_token=demo.webhook_token)
            try:
                for _ in range(8):
                    await sim.step()
            finally:
                await sim.aclose()
            return sim

        sim = asyncio.run(feed())
        events = sim.stats.events
        assert all(e.status in (200, 201) for e in events), events
        kinds = {e.kind for e in events}
        assert {
            EventKind.HOT_LEAD,
            EventKind.LEAD,
            EventKind.AFTER_HOURS,
            EventKind.DUPLICATE,
            EventKind.REPLY,
            EventKind.STOP,
        } <= kinds
        duplicate = next(e for e in events if e.kind is EventKind.DUPLICATE)
        assert "merged into" in duplicate.detail
        hot = next(e for e in events if e.kind is EventKind.HOT_LEAD)
        assert "grade A" in hot.detail or "score" in hot.detail
        stop = next(e for e in events if e.kind is EventKind.STOP)
        lead = httpx.get(f"{demo.base_url}/v1/leads/{stop.lead_id}", headers=headers, timeout=20)
        if lead.status_code == 200:  # ana's lead: she sees the opt-out
            assert "opted_out_at" in lead.text
    finally:
        demo.stop()


def test_after_hours_means_outside_the_calling_window_there() -> None:
    morning_chicago = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 9:00 AM in Chicago
    assert quiet_now("Pacific/Honolulu", morning_chicago)  # 5:00 AM there
    assert not quiet_now("America/Chicago", morning_chicago)
