"""Several headless workstation cores (the real core: store, outbox, sync engine with SSE) against
one real `bdc-server serve` process, every byte through FaultProxy, which drops, delays, stalls
and resets connections at random (seeded). 1,000 actions (notes and dispositions) spread over the
workstations while the faults run; then the faults stop and server and clients must agree
exactly: every action on the server once, none refused, none doubled (activity rows and their
change-feed rows), every local copy confirmed, every cursor at the server's newest change.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.services.workstation import Workstation, WorkstationConfig, build_workstation
from app.store.models import ActivityRow as LocalActivityRow
from app.sync.signin import SignInService
from server.db import ActivityRow, ChangeRow, make_engine, make_sessionmaker
from tests.app.sync.live import FAST_SYNC, PASSWORD, MemoryKeyring, rulebook, wait_for
from tests.reliability.faultproxy import FaultProxy, FaultRates
from tests.reliability.support import ServerProcess, figures, scaled

SEED = 20260309
ACTIONS = scaled(1000, 5000)
USERS = ("ana", "ben", "mia", "root")  # two agents, a manager, an admin of store lakeside
LEADS = 12
DISPOSITIONS = ("no_answer", "left_voicemail", "busy")


def _post_lead(server: ServerProcess, n: int) -> str:
    body = {
        "person": {"first_name": f"Net{n}", "last_name": "Fault"},
        "phones": [{"number": f"(312) 555-{1000 + n:04d}", "kind": "cellphone"}],
        "emails": [{"address": f"net{n}.fault@example.com"}],
        "address": {"city": "Chicago", "state": "IL", "postal_code": "60614"},
        "vehicles": [{"year": 2026, "make": "Toyota", "model": "RAV4"}],
    }
    response = httpx.post(
        f"{server.base_url}/v1/leads",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=20,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["leads"][0]["lead_id"])


async def _open(username: str, url: str, data_dir: Path) -> Workstation:
    signin = SignInService.open(url, keyring_backend=MemoryKeyring())
    account = await signin.sign_in(username, PASSWORD)
    config = WorkstationConfig(
        server_url=url, data_dir=data_dir / username, sync=FAST_SYNC, api_timeout=1.0
    )
    workstation = build_workstation(config, account, signin, rulebook())
    await workstation.start()
    return workstation


def _local_activity_rows(workstation: Workstation) -> list[LocalActivityRow]:
    with workstation.store.read("test") as session:
        return list(session.scalars(select(LocalActivityRow)))


@pytest.mark.slow
@pytest.mark.timeout(scaled(180, 900))
def test_actions_through_a_faulty_network_land_exactly_once_and_everyone_agrees(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "server.db", tmp_path / "server.log")
    server.start()
    engine = make_engine(server.db_url)
    sessions = make_sessionmaker(engine)
    try:
        lead_ids = [_post_lead(server, n) for n in range(LEADS)]
        asyncio.run(_run(server, sessions, lead_ids, tmp_path))
    finally:
        server.stop()
        engine.dispose()


async def _run(server: ServerProcess, sessions: object, lead_ids: list[str], tmp: Path) -> None:
    proxy = FaultProxy("127.0.0.1", server.port, seed=SEED, rates=FaultRates())
    await proxy.start()
    proxy.enabled = False  # sign-in and the first download on a good network
    workstations: list[Workstation] = []
    rng = random.Random(SEED)
    created: list[str] = []
    try:
        for username in USERS:
            workstations.append(await _open(username, proxy.url, tmp))
        for workstation in workstations:
            await wait_for(lambda w=workstation: w.store.repository.lead_count() > 0, 20)
        mine = {
            w.account.username: [i for i in lead_ids if w.store.repository.get_lead(i)]
            for w in workstations
        }
        assert all(mine.values()), mine

        proxy.enabled = True
        began = time.monotonic()

        async def agent(workstation: Workstation, count: int) -> None:
            leads = mine[workstation.account.username]
            for n in range(count):
                lead_id = rng.choice(leads)
                if rng.random() < 0.3:
                    result = await workstation.actions.log_disposition(
                        lead_id, rng.choice(DISPOSITIONS), note=f"d{n}"
                    )
                else:
                    result = await workstation.actions.add_note(lead_id, f"note {n}")
                assert result.ok
                created.extend(result.activity_ids)
                await asyncio.sleep(rng.uniform(0, 0.02))

        share = [ACTIONS // len(workstations)] * len(workstations)
        share[0] += ACTIONS - sum(share)
        await asyncio.gather(*(agent(w, c) for w, c in zip(workstations, share, strict=True)))
        recorded_s = time.monotonic() - began
        await wait_for(lambda: all(w.store.outbox.pending_count() == 0 for w in workstations), 90)
        delivered_s = time.monotonic() - began
        faults = dict(proxy.counts)

        # The network heals: everyone catches up with the change feed.
        proxy.enabled = False
        for workstation in workstations:
            await workstation.engine.pull_once()
        clients = {w.account.username: _client_view(w, lead_ids) for w in workstations}
    finally:
        for workstation in workstations:
            await workstation.close()
        await proxy.stop()

    with sessions() as session:  # type: ignore[operator]
        on_server = Counter(
            session.scalars(select(ActivityRow.id).where(ActivityRow.id.in_(created)))
        )
        change_rows = Counter(
            session.scalars(
                select(ChangeRow.entity_id).where(
                    ChangeRow.entity == "activity", ChangeRow.entity_id.in_(created)
                )
            )
        )
        newest = session.scalar(select(func.max(ChangeRow.seq)))
        server_activities = {
            lead_id: set(
                session.scalars(select(ActivityRow.id).where(ActivityRow.lead_id == lead_id))
            )
            for lead_id in lead_ids
        }
    lost = [i for i in created if i not in on_server]
    duplicated = [i for i, n in on_server.items() if n > 1] + [
        i for i, n in change_rows.items() if n > 1
    ]
    figures(
        "network faults",
        actions=ACTIONS,
        activities=len(created),
        workstations=len(USERS),
        connections=proxy.connections,
        faults=sum(faults.values()),
        **{f"faults_{kind}": n for kind, n in sorted(faults.items())},
        lost=len(lost),
        duplicated=len(duplicated),
        recorded_s=round(recorded_s, 1),
        delivered_s=round(delivered_s, 1),
    )
    assert sum(faults.values()) >= ACTIONS // 20, faults
    assert not lost and not duplicated
    assert len(set(created)) == len(created)
    assert set(change_rows) == set(created), "every activity is in the change feed once"

    # The clients agree with the server: nothing refused, nothing pending, cursors converged, and
    # each one's copy of its leads' histories is exactly the server's.
    for username, view in clients.items():
        assert view.failed == 0 and view.pending_rows == 0, (username, view)
        assert view.cursor == str(newest), (username, view.cursor, newest)
        for lead_id, ids in view.activities.items():
            assert ids == server_activities[lead_id], (username, lead_id)


@dataclass
class _ClientView:
    failed: int
    pending_rows: int
    cursor: str | None
    activities: dict[str, set[str]]


def _client_view(workstation: Workstation, lead_ids: list[str]) -> _ClientView:
    rows = _local_activity_rows(workstation)
    held = {i for i in lead_ids if workstation.store.repository.get_lead(i) is not None}
    activities: dict[str, set[str]] = {i: set() for i in held}
    for row in rows:
        if row.lead_id in activities:
            activities[row.lead_id].add(row.id)
    return _ClientView(
        failed=len(workstation.store.outbox.failed_items()),
        pending_rows=sum(1 for row in rows if row.pending),
        cursor=workstation.store.repository.cursor(),
        activities=activities,
    )
