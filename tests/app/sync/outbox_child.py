"""A workstation process for the SIGKILL test (run as a subprocess, never collected).

argv: DB_PATH KEY BASE_URL TOKEN LEAD_ID COUNT. Records COUNT notes in the outbox (printing
"written" once all are committed), then drains the outbox to the server with every reply held
back 0.4 s after the server acted — the window in which the parent kills this process.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.domain.activities import Activity, ActivityKind
from app.store import open_local_store
from app.sync.api import LeadApi
from app.sync.engine import SyncEngine, SyncSettings
from tests.app.sync.live import Faults, FaultyTransport


async def main(db_path: str, key: str, base_url: str, token: str, lead_id: str, count: int) -> None:
    store = open_local_store(Path(db_path), key)
    for n in range(count):
        store.outbox.record_activity(
            Activity(
                id=str(uuid.uuid4()),
                lead_id=lead_id,
                kind=ActivityKind.NOTE,
                at=datetime.now(UTC),
                agent_id="user-ana",
                body=f"before the kill {n}",
            )
        )
    print("written", flush=True)
    transport = FaultyTransport(Faults(delay_writes_s=0.4))
    api = LeadApi(base_url, token=token, timeout=5.0, transport=transport)
    engine = SyncEngine(api, store, settings=SyncSettings(use_sse=False, backoff_max=0.2))
    while True:
        await engine.push_once()
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    db, key, url, token, lead, count = sys.argv[1:7]
    asyncio.run(main(db, key, url, token, lead, int(count)))
