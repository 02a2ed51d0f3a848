"""The workstation process killed (SIGKILL) between the local write and the send: after a
restart the outbox resumes, and every action reaches the server exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from app.store import open_local_store
from app.store.db import make_engine
from app.store.models import OutboxRow
from app.sync.api import LeadApi
from app.sync.engine import SyncEngine, SyncSettings
from tests.app.sync.live import LiveServer, wait_for

REPO = Path(__file__).resolve().parents[3]
KEY = "a1" * 32
COUNT = 12


def _states(db_path: Path) -> Counter[str]:
    engine = make_engine(db_path, KEY)
    try:
        with engine.connect() as connection:
            return Counter(connection.scalars(select(OutboxRow.state)))
    finally:
        engine.dispose()


def test_sigkill_between_write_and_send_loses_nothing_and_doubles_nothing(
    live: LiveServer, tmp_path: Path
) -> None:
    lead_id = live.post_lead("Crash")
    token = live.token("ana")
    db_path = tmp_path / "ws" / "local.db"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.app.sync.outbox_child",
            str(db_path),
            KEY,
            live.base_url,
            token,
            lead_id,
            str(COUNT),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "written"
        # Kill it while a send is under way: the server has some, the PC has not heard back.
        deadline = time.monotonic() + 15
        while len(live.activity_ids(lead_id)) < 3:
            assert time.monotonic() < deadline, "the child sent nothing"
            time.sleep(0.01)
        time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    on_server_before = len(live.activity_ids(lead_id))
    states = _states(db_path)
    assert sum(states.values()) == COUNT
    # The killed process had sent more than it had marked done: the dangerous window.
    assert states["sending"] == 1
    assert states["done"] < on_server_before < COUNT

    async def restart() -> None:
        store = open_local_store(db_path, KEY)  # recovers the item caught mid-send
        api = LeadApi(live.base_url, token=token, timeout=5.0)
        engine = SyncEngine(api, store, settings=SyncSettings(use_sse=False))
        try:
            assert store.outbox.pending_count() == COUNT - states["done"]
            await engine.push_once()
            await wait_for(lambda: store.outbox.pending_count() == 0, 10)
            assert store.outbox.failed_items() == []
        finally:
            await engine.stop()
            await api.aclose()
            store.close()

    asyncio.run(restart())
    on_server = Counter(live.activity_ids(lead_id))
    assert len(on_server) == COUNT
    assert set(on_server.values()) == {1}
