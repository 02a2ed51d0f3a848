"""The floor simulator: demo agents work through the real API, so the manager's board moves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.demo.simulator import FloorSimulator
from tests.app.sync.live import PASSWORD, LiveServer


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server.db")
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_simulated_agents_change_presence_and_log_calls(live: LiveServer) -> None:
    for n in range(6):
        live.post_lead(f"Sim{n}", "Caller")
    # Give every lead to an agent so each has something to call.
    headers = {"Authorization": f"Bearer {live.token('mia')}"}

    leads = httpx.get(f"{live.base_url}/v1/leads", headers=headers).json()["leads"]
    for i, lead in enumerate(leads):
        agent = ("user-ana", "user-ben")[i % 2]
        httpx.post(
            f"{live.base_url}/v1/leads/{lead['id']}/assign",
            json={"agent_id": agent},
            headers=headers,
        ).raise_for_status()

    async def main() -> tuple[dict[str, str], int]:
        floor = FloorSimulator(live.base_url, ("ana", "ben"), PASSWORD, seed=3)
        try:
            await floor.warm_up()
            for _ in range(10):
                await floor.step()
            return {a.username: a.state for a in floor.agents}, floor.calls_logged
        finally:
            await floor.aclose()

    states, logged = asyncio.run(main())
    assert logged >= 2
    board = httpx.get(f"{live.base_url}/v1/floor", headers=headers).json()["agents"]
    shown = {a["username"]: a for a in board}
    assert {name: shown[name]["state"] for name in states} == states
    assert sum(a["today"]["calls"] for a in board) == logged
