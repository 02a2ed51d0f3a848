"""A pool lead taken by one agent leaves every other agent's pool: a store-wide "pool_left"
change after the lead's own change (so the taker and managers keep it), and the holding is kept
(an agent's activities from while it sat in the pool still land)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from server.db import make_engine, make_sessionmaker, transaction
from tests.server.conftest import Seeded
from tests.server.test_floor import add_lead


def feed(seeded: Seeded, user: str) -> list[tuple[str, dict[str, Any]]]:
    answer = seeded.client.get(
        "/v1/changes", params={"since": 0, "limit": 1000}, headers=seeded.headers(user)
    )
    assert answer.status_code == 200, answer.text
    return [(c["entity"], c["data"]) for c in answer.json()["changes"]]


def test_a_claim_is_announced_to_the_whole_store_after_the_lead_itself(seeded: Seeded) -> None:
    engine = make_engine(seeded.db_url)
    with transaction(make_sessionmaker(engine)) as session:
        lead_id = add_lead(session, "lakeside", datetime.now(UTC) - timedelta(minutes=5)).id
    engine.dispose()
    claimed = seeded.client.post(f"/v1/leads/{lead_id}/claim", headers=seeded.headers("ana"))
    assert claimed.status_code == 200, claimed.text

    left = [d for e, d in feed(seeded, "ben") if e == "pool_left"]
    assert left == [
        {
            "lead_id": lead_id,
            "agent_id": "user-ana",
            "reason": "taken from the pool by Ana",
            "version": 2,
        }
    ]
    # Ana and the manager get the lead with its new agent first, then the announcement.
    for user in ("ana", "mia"):
        entities = [
            (e, d.get("lead", d).get("id", d.get("lead_id"))) for e, d in feed(seeded, user)
        ]
        about = [e for e, i in entities if i == lead_id]
        assert about[about.index("pool_left") - 1] == "lead", (user, about)
    # The other store hears nothing of it.
    assert [d for e, d in feed(seeded, "zed") if e == "pool_left"] == []

    # Ben's note from while the lead sat in the pool still lands; one from after does not.
    headers = {**seeded.headers("ben"), "Idempotency-Key": str(uuid.uuid4())}
    earlier = {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "kind": "note",
        "at": (datetime.now(UTC) - timedelta(minutes=4)).isoformat(),
        "body": "saw it in the pool",
    }
    assert seeded.client.post("/v1/activities", json=earlier, headers=headers).status_code == 201
    later = {
        **earlier,
        "id": str(uuid.uuid4()),
        "at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }
    headers["Idempotency-Key"] = str(uuid.uuid4())
    assert seeded.client.post("/v1/activities", json=later, headers=headers).status_code == 403
