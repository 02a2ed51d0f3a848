"""GET /v1/changes: paging by cursor, who sees what, 410 past retention, and pruning."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.changes import record
from server.db import ChangeRow, make_engine, make_sessionmaker, transaction, utcnow
from server.hub import PRUNED, ChangeHub, prune_changes
from server.settings import Settings
from tests.server.conftest import Seeded
from tests.server.lead_helpers import lead_body, post_lead


@pytest.fixture
def sessions(seeded: Seeded) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(seeded.db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


# (store, entity, entity_id, owner) — written in this order, so seq 1..N.
FEED = [
    ("lakeside", "lead", "L1", "user-ana"),  # 1 ana's
    ("lakeside", "lead", "L2", "user-ben"),  # 2 ben's
    ("lakeside", "lead", "L3", None),  # 3 the pool
    ("riverside", "lead", "R1", "user-zed"),  # 4 another store
    ("lakeside", "activity", "A1", None),  # 5 on a pool lead
    ("lakeside", "alert", "E1", None),  # 6 managers' alert
    ("lakeside", "presence", "user-ana", None),  # 7 ana's own presence
    ("lakeside", "presence", "user-ben", None),  # 8 ben's presence
    ("lakeside", "lead_removed", "L1", "user-ben"),  # 9 L1 left ben's queue
    ("lakeside", "message", "M1", "user-ana"),  # 10
]


def write_feed(sessions: sessionmaker[Session], feed: list[tuple[str, str, str, Any]]) -> None:
    for store, entity, entity_id, owner in feed:
        with transaction(sessions) as session:
            record(
                session,
                store_id=store,
                entity=entity,
                entity_id=entity_id,
                data={"id": entity_id},
                agent_id=owner,
            )


def pull(seeded: Seeded, headers: dict[str, str], since: int, limit: int = 500) -> Any:
    response = seeded.client.get(f"/v1/changes?since={since}&limit={limit}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def seqs(page: Any) -> list[int]:
    return [c["seq"] for c in page["changes"]]


def test_each_role_sees_its_share(seeded: Seeded, sessions: sessionmaker[Session]) -> None:
    write_feed(sessions, FEED)
    ana = pull(seeded, seeded.headers("ana"), 0)
    assert seqs(ana) == [1, 3, 5, 7, 10]
    assert ana["next_cursor"] == 10
    assert ana["newest"] == 10
    assert ana["has_more"] is False
    assert seqs(pull(seeded, seeded.headers("ben"), 0)) == [2, 3, 5, 8, 9]
    assert seqs(pull(seeded, seeded.headers("mia"), 0)) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert seqs(pull(seeded, seeded.headers("root"), 0)) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    rita = pull(seeded, seeded.headers("rita"), 0)
    assert seqs(rita) == [4]
    assert rita["newest"] == 4
    first = ana["changes"][0]
    assert first["entity"] == "lead"
    assert first["entity_id"] == "L1"
    assert first["data"] == {"id": "L1"}
    assert first["at"].endswith("+00:00")


def test_paging_walks_every_row_once_and_moves_past_hidden_ones(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_feed(sessions, FEED)
    headers = seeded.headers("ana")
    page = pull(seeded, headers, 0, limit=2)
    assert (seqs(page), page["next_cursor"], page["has_more"]) == ([1], 2, True)
    page = pull(seeded, headers, 2, limit=2)
    assert (seqs(page), page["next_cursor"], page["has_more"]) == ([3, 5], 5, True)
    page = pull(seeded, headers, 5, limit=3)
    # 6 (alert) and 8 (ben's presence) are not hers: the cursor moves past them anyway.
    assert (seqs(page), page["next_cursor"], page["has_more"]) == ([7], 8, True)
    page = pull(seeded, headers, 8, limit=2)
    assert (seqs(page), page["next_cursor"], page["has_more"]) == ([10], 10, False)
    page = pull(seeded, headers, 10, limit=2)
    assert (seqs(page), page["next_cursor"], page["has_more"]) == ([], 10, False)


def test_query_is_validated(seeded: Seeded) -> None:
    headers = seeded.headers("mia")
    for query, field in (
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=-1", "since"),
        ("since=abc", "since"),
    ):
        response = seeded.client.get(f"/v1/changes?{query}", headers=headers)
        assert response.status_code == 422, query
        assert any(field in p for p in response.json()["problems"]), query
    assert seeded.client.get("/v1/changes?limit=1000", headers=headers).status_code == 200


def test_who_may_read(seeded: Seeded) -> None:
    assert seeded.client.get("/v1/changes").status_code == 401
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.get("/v1/changes", headers=key).status_code == 403


def real_seqs(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as session:
        query = select(ChangeRow.seq).where(ChangeRow.entity != PRUNED).order_by(ChangeRow.seq)
        return list(session.scalars(query).all())


def _age(sessions: sessionmaker[Session], upto_seq: int, days: int) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(ChangeRow)
            .where(ChangeRow.seq <= upto_seq)
            .values(at=utcnow() - timedelta(days=days))
        )


def test_prune_deletes_a_prefix_and_then_old_cursors_get_410(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_feed(sessions, FEED)
    _age(sessions, 4, days=31)
    with transaction(sessions) as session:
        assert prune_changes(session, timedelta(days=30), utcnow()) == 4
        assert prune_changes(session, timedelta(days=30), utcnow()) == 0
    assert real_seqs(sessions) == [5, 6, 7, 8, 9, 10]
    headers = seeded.headers("mia")
    gone = seeded.client.get("/v1/changes?since=3", headers=headers)
    assert gone.status_code == 410
    body = gone.json()
    assert body["resync"] is True
    assert (body["oldest"], body["newest"]) == (5, 10)
    assert "resync" in body["detail"]
    assert seeded.client.get("/v1/changes?since=0", headers=headers).status_code == 410
    # since == oldest - 1 lost nothing: fine.
    assert seqs(pull(seeded, headers, 4)) == [5, 6, 7, 8, 9, 10]


def test_prune_never_deletes_the_newest_row(
    sessions: sessionmaker[Session], seeded: Seeded
) -> None:
    write_feed(sessions, FEED[:3])
    _age(sessions, 3, days=90)
    with transaction(sessions) as session:
        assert prune_changes(session, timedelta(days=30), utcnow()) == 2
    write_feed(sessions, FEED[3:4])
    # The seq keeps growing (SQLite would reuse a freed top rowid).
    assert real_seqs(sessions) == [3, 4]
    assert seqs(pull(seeded, seeded.headers("mia"), 2)) == [3]


def test_prune_by_age_deletes_a_prefix_even_with_skewed_clocks(
    sessions: sessionmaker[Session], seeded: Seeded
) -> None:
    write_feed(sessions, FEED)
    # Row 6 is "old" but 5 is not (clocks of two API processes differ): both go, as a prefix.
    _age(sessions, 4, days=40)
    with transaction(sessions) as session:
        session.execute(
            update(ChangeRow).where(ChangeRow.seq == 6).values(at=utcnow() - timedelta(days=40))
        )
    with transaction(sessions) as session:
        assert prune_changes(session, timedelta(days=30), utcnow()) == 6
    assert real_seqs(sessions) == [7, 8, 9, 10]


def test_a_gap_at_the_start_is_not_a_pruned_log(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    # seq 1's transaction rolled back (PostgreSQL never reuses a sequence value): no 410.
    write_feed(sessions, FEED[:2])
    with transaction(sessions) as session:
        session.execute(delete(ChangeRow).where(ChangeRow.seq == 1))
    assert seqs(pull(seeded, seeded.headers("ben"), 0)) == [2]


def test_a_cursor_ahead_of_the_log_gets_410(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_feed(sessions, FEED[:2])
    response = seeded.client.get("/v1/changes?since=99", headers=seeded.headers("ana"))
    assert response.status_code == 410
    assert "ahead" in response.json()["detail"]


def test_an_empty_log_is_fine(seeded: Seeded) -> None:
    page = pull(seeded, seeded.headers("ana"), 0)
    assert page == {"changes": [], "next_cursor": 0, "has_more": False, "newest": 0}


class _RecordingHub(ChangeHub):
    """The watcher's poll on its own, what it would publish kept instead of sent to a loop."""

    def __init__(self, engine: Engine, settings: Settings, mark: int) -> None:
        super().__init__(engine, settings)
        self._poll_engine = engine
        self._mark = mark
        self.published: list[list[tuple[str, int]]] = []

    def publish_threadsafe(self, items: Any) -> None:
        self.published.append(sorted(items))


def test_the_watchers_poll_finds_each_stores_newest_by_a_seek_not_a_scan(
    seeded: Seeded, sessions: sessionmaker[Session], settings: Settings
) -> None:
    write_feed(sessions, FEED)
    engine = make_engine(seeded.db_url)
    statements: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        hub = _RecordingHub(engine, settings, mark=3)
        hub.refresh()
        hub.refresh()  # nothing new: nothing published
        assert hub.published == [[("lakeside", 10), ("riverside", 4)]]
        if engine.dialect.name != "sqlite":
            return
        # SQLite answered "max(seq) ... GROUP BY store_id" by walking the whole store_id
        # index: 20 ms every poll at 580,000 changes, on an idle server too.
        event.remove(engine, "before_cursor_execute", remember)
        with engine.connect() as connection:
            for statement, params in statements:
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                details = [str(row[-1]) for row in plan]
                assert not any(d.startswith("SCAN") for d in details), (statement, details)
    finally:
        if event.contains(engine, "before_cursor_execute", remember):
            event.remove(engine, "before_cursor_execute", remember)
        engine.dispose()


def _newest_seq(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.max(ChangeRow.seq))) or 0)


def test_a_lead_handed_to_another_agent_brings_its_history_into_their_feed(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    """An activity's change goes to the lead's holder at its time: the new holder's PC would
    never hear of the calls made before (and count its attempt caps from nothing)."""
    posted = post_lead(seeded, lead_body())
    assert posted.status_code == 201, posted.text
    lead_id = posted.json()["leads"][0]["lead_id"]
    mia = seeded.headers("mia")

    def assign(agent: str) -> None:
        reply = seeded.client.post(
            f"/v1/leads/{lead_id}/assign", json={"agent_id": agent}, headers=mia
        )
        assert reply.status_code == 200, reply.text

    assign("user-ben")
    call = {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "kind": "call",
        "at": utcnow().isoformat(),
        "direction": "outbound",
        "phone": "+13125550142",
        "answered": False,
    }
    headers = {**seeded.headers("ben"), "Idempotency-Key": call["id"]}
    logged = seeded.client.post("/v1/activities", json=call, headers=headers)
    assert logged.status_code == 201, logged.text
    before = _newest_seq(sessions)
    assign("user-ana")
    page = pull(seeded, seeded.headers("ana"), before)
    entities = [(c["entity"], c["entity_id"]) for c in page["changes"]]
    assert ("lead", lead_id) in entities
    assert ("activity", call["id"]) in entities  # Ben's call, now Ana's to count
    assert entities.index(("lead", lead_id)) < entities.index(("activity", call["id"]))
    # A pool lead claimed by its first holder brings nothing again: the pool's were store-wide.
    fresh = post_lead(seeded, lead_body(phones=[{"number": "(312) 555-0177"}]))
    fresh_id = fresh.json()["leads"][0]["lead_id"]
    before = _newest_seq(sessions)
    claimed = seeded.client.post(f"/v1/leads/{fresh_id}/claim", headers=seeded.headers("ana"))
    assert claimed.status_code == 200, claimed.text
    again = pull(seeded, seeded.headers("ana"), before)["changes"]
    assert [c for c in again if c["entity"] == "activity"] == []
