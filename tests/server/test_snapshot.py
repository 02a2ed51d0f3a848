"""GET /v1/snapshot: who sees which leads, paging by lead id, each lead as its "lead" change with
its whole history, `newest` as the cursor to follow the change feed from (also on a pruned log),
and the plans SQLite uses for a page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import Activity, ActivityKind
from server.auth import Principal, Role
from server.changes import record
from server.db import (
    ActivityRow,
    ChangeRow,
    LeadRow,
    make_engine,
    make_sessionmaker,
    transaction,
    utcnow,
)
from server.hub import PRUNED, prune_changes
from server.services import common
from server.services.snapshot import read_snapshot
from tests.server.conftest import Seeded
from tests.server.test_floor import add_lead

T0 = datetime.fromisoformat("2026-03-04T16:00:00+00:00")


@pytest.fixture
def sessions(seeded: Seeded) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(seeded.db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


# lead id -> (store, assignee): written in this order.
LEADS = {
    "L01": ("lakeside", "user-ana"),
    "L02": ("lakeside", "user-ben"),
    "L03": ("lakeside", None),
    "L04": ("lakeside", "user-ana"),
    "L05": ("lakeside", None),
    "L06": ("lakeside", "user-ben"),
    "L07": ("lakeside", None),
    "R01": ("riverside", None),
    "R02": ("riverside", "user-zed"),
}
LAKESIDE = [i for i, (store, _) in LEADS.items() if store == "lakeside"]
ANAS = ["L01", "L03", "L04", "L05", "L07"]  # hers and the pool
BENS = ["L02", "L03", "L05", "L06", "L07"]
RIVERSIDE = ["R01", "R02"]


def write_leads(sessions: sessionmaker[Session], leads: dict[str, Any] = LEADS) -> None:
    with transaction(sessions) as session:
        for n, (lead_id, (store, agent)) in enumerate(leads.items()):
            add_lead(session, store, T0 + timedelta(minutes=n), agent=agent, lead_id=lead_id)


def note(
    session: Session, lead_id: str, at: datetime, agent: str | None, body: str, activity_id: str
) -> None:
    row = session.get(LeadRow, lead_id)
    assert row is not None
    activity = Activity(
        id=activity_id, lead_id=lead_id, kind=ActivityKind.NOTE, at=at, agent_id=agent, body=body
    )
    common.add_activity(session, row, activity)


def snapshot(seeded: Seeded, user: str, **params: Any) -> Any:
    response = seeded.client.get("/v1/snapshot", params=params, headers=seeded.headers(user))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return json.loads(response.content)


def walk(seeded: Seeded, user: str, limit: int) -> list[dict[str, Any]]:
    """Every page from the start; returns the pages."""
    pages = [snapshot(seeded, user, limit=limit)]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) < 50, "the cursor does not move"
        pages.append(snapshot(seeded, user, limit=limit, cursor=pages[-1]["next_cursor"]))
    return pages


def ids(page: dict[str, Any]) -> list[str]:
    return [entry["lead"]["id"] for entry in page["leads"]]


def pull_changes(seeded: Seeded, user: str, since: int) -> Any:
    response = seeded.client.get(
        "/v1/changes", params={"since": since, "limit": 1000}, headers=seeded.headers(user)
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- Who sees what --------------------------------------------------------------------------------


def test_agents_see_their_own_leads_and_the_pool_managers_their_store(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions)
    for user, expected in (
        ("ana", ANAS),
        ("ben", BENS),
        ("mia", LAKESIDE),
        ("root", LAKESIDE),
        ("zed", RIVERSIDE),
        ("rita", RIVERSIDE),
    ):
        page = snapshot(seeded, user)
        assert (ids(page), page["total"], page["next_cursor"]) == (expected, len(expected), None)
    # The same set GET /v1/leads gives her.
    listed = seeded.client.get("/v1/leads?assigned=all&limit=500", headers=seeded.headers("ana"))
    assert sorted(lead["id"] for lead in listed.json()["leads"]) == ANAS


def test_who_may_read(seeded: Seeded) -> None:
    assert seeded.client.get("/v1/snapshot").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert seeded.client.get("/v1/snapshot", headers=bad).status_code == 401
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.get("/v1/snapshot", headers=key).status_code == 403


def test_a_caller_of_no_staff_role_sees_nothing(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions)
    integration = Principal("key-1", Role.INTEGRATION, "lakeside", "Cars.com")
    with sessions() as session:
        page = json.loads(read_snapshot(session, integration, None, 500))
    assert (page["leads"], page["total"]) == ([], 0)


# --- Paging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "limit", "expected"),
    [
        ("mia", 3, [["L01", "L02", "L03"], ["L04", "L05", "L06"], ["L07"]]),
        ("ana", 2, [["L01", "L03"], ["L04", "L05"], ["L07"]]),
        ("ana", 5, [ANAS]),  # exactly one full page: no empty page after it
        ("ana", 1000, [ANAS]),
        ("zed", 1, [["R01"], ["R02"]]),
    ],
)
def test_paging_walks_every_visible_lead_once_in_id_order(
    seeded: Seeded, sessions: sessionmaker[Session], user: str, limit: int, expected: list[Any]
) -> None:
    write_leads(sessions)
    pages = walk(seeded, user, limit)
    assert [ids(p) for p in pages] == expected
    assert [p["next_cursor"] for p in pages] == [*(page[-1] for page in expected[:-1]), None]
    assert {p["total"] for p in pages} == {sum(map(len, expected))}


def test_a_cursor_between_ids_and_past_the_end(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions)
    assert ids(snapshot(seeded, "mia", cursor="L035")) == ["L04", "L05", "L06", "L07"]
    past = snapshot(seeded, "mia", cursor="L99")
    assert (past["leads"], past["next_cursor"], past["total"]) == ([], None, 7)


def test_an_empty_store(seeded: Seeded) -> None:
    body = seeded.client.get("/v1/snapshot", headers=seeded.headers("ana")).content
    assert json.loads(body) == {"newest": 0, "total": 0, "leads": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("limit=many", "limit"),
        ("cursor=" + "x" * 65, "cursor"),
        ("cursor=L0%00", "cursor"),  # PostgreSQL cannot compare text holding NUL
    ],
)
def test_bad_parameters_are_422(seeded: Seeded, query: str, field: str) -> None:
    response = seeded.client.get(f"/v1/snapshot?{query}", headers=seeded.headers("mia"))
    assert response.status_code == 422, query
    assert any(field in p for p in response.json()["problems"]), response.text


@pytest.mark.parametrize("cursor", ["x" * 64, "L0é'\"✓", " "])
def test_any_other_cursor_is_fine(seeded: Seeded, cursor: str) -> None:
    response = seeded.client.get(
        "/v1/snapshot", params={"cursor": cursor}, headers=seeded.headers("mia")
    )
    assert response.status_code == 200, response.text


# --- What a lead carries --------------------------------------------------------------------------


def test_each_lead_is_its_lead_change_with_its_whole_history_oldest_first(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions)
    with transaction(sessions) as session:
        # L02: ben's first, with notes logged in no order of time and two at the same instant.
        note(session, "L02", T0 + timedelta(hours=3), "user-ben", "third", "act-c")
        note(session, "L02", T0 + timedelta(hours=1), "user-ben", 'first "quoted"', "act-b")
        note(session, "L02", T0 + timedelta(hours=1), "user-ben", "also first", "act-a")
        note(session, "L05", T0, None, "café — ünïcode ✓", "act-p")
        row = session.get(LeadRow, "L02")
        assert row is not None
        due = T0 + timedelta(days=1)
        common.save_lead(
            session, row, common.lead_of(row), score=87, tier="hot", grade="A", due_at=due
        )
    with transaction(sessions) as session:
        # Then it is ana's: ben's history comes with it.
        row = session.get(LeadRow, "L02")
        assert row is not None
        common.save_lead(session, row, replace(common.lead_of(row), assigned_agent_id="user-ana"))
        note(session, "L02", T0 + timedelta(hours=2), "user-ana", "second", "act-d")

    page = snapshot(seeded, "ana")
    assert ids(page) == ["L01", "L02", "L03", "L04", "L05", "L07"]
    with sessions() as session:
        for entry in page["leads"]:
            lead_id = entry["lead"]["id"]
            row = session.get(LeadRow, lead_id)
            assert row is not None
            history = session.scalars(
                select(ActivityRow.data)
                .where(ActivityRow.lead_id == lead_id)
                .order_by(ActivityRow.at, ActivityRow.id)
            ).all()
            assert entry == {**common.lead_change_payload(row), "activities": list(history)}
    l02 = page["leads"][1]
    assert [a["id"] for a in l02["activities"]] == ["act-a", "act-b", "act-d", "act-c"]
    assert l02["activities"][1]["body"] == 'first "quoted"'
    assert [a["agent_id"] for a in l02["activities"]] == [*["user-ben"] * 2, "user-ana", "user-ben"]
    assert (l02["score"], l02["tier"], l02["grade"], l02["version"]) == (87, "hot", "A", 3)
    assert l02["due_at"] == "2026-03-05T16:00:00+00:00"
    assert page["leads"][4]["activities"][0]["body"] == "café — ünïcode ✓"
    assert page["leads"][0]["activities"] == []
    # Each lead is exactly what its newest "lead" change carries.
    changes = pull_changes(seeded, "ana", 0)["changes"]
    newest_change = {c["entity_id"]: c["data"] for c in changes if c["entity"] == "lead"}
    for entry in page["leads"]:
        assert {k: v for k, v in entry.items() if k != "activities"} == newest_change[
            entry["lead"]["id"]
        ]


# --- newest: where the change feed takes over -----------------------------------------------------


def test_newest_is_the_stores_newest_seq_and_the_feed_after_it_has_what_came_later(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions)
    with sessions() as session:
        lakeside_newest = session.scalar(
            select(func.max(ChangeRow.seq)).where(ChangeRow.store_id == "lakeside")
        )
        assert lakeside_newest < session.scalar(select(func.max(ChangeRow.seq)))  # R01, R02
    first = snapshot(seeded, "ana", limit=2)
    assert first["newest"] == lakeside_newest
    # While she pages: L01 (on page 1) is edited, a note lands on L07 (on page 3).
    with transaction(sessions) as session:
        row = session.get(LeadRow, "L01")
        assert row is not None
        common.save_lead(session, row, replace(common.lead_of(row), comments="changed"))
        note(session, "L07", T0 + timedelta(hours=5), None, "late note", "act-late")
    rest = walk(seeded, "ana", 2)
    assert rest[0]["newest"] > first["newest"]
    follow = pull_changes(seeded, "ana", first["newest"])
    seen = [(c["entity"], c["entity_id"]) for c in follow["changes"]]
    assert ("lead", "L01") in seen
    assert ("activity", "act-late") in seen
    assert all(c["seq"] > first["newest"] for c in follow["changes"])
    edited = next(c["data"] for c in follow["changes"] if c["entity_id"] == "L01")
    assert edited["lead"]["comments"] == "changed"
    assert edited["version"] == 2


def _age_all_but_the_newest(sessions: sessionmaker[Session], days: int) -> None:
    with transaction(sessions) as session:
        newest = session.scalar(select(func.max(ChangeRow.seq)))
        session.execute(
            update(ChangeRow)
            .where(ChangeRow.seq < newest)
            .values(at=utcnow() - timedelta(days=days))
        )


def test_on_a_pruned_log_newest_is_a_cursor_the_feed_accepts(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions, {k: v for k, v in LEADS.items() if v[0] == "lakeside"})
    with transaction(sessions) as session:
        note(session, "L03", T0, None, "old note", "act-old")
    with transaction(sessions) as session:
        record(  # riverside's, the newest: every lakeside change is older than retention
            session, store_id="riverside", entity="alert", entity_id="E1", data={}, agent_id=None
        )
    _age_all_but_the_newest(sessions, days=40)
    with transaction(sessions) as session:
        assert prune_changes(session, timedelta(days=30), utcnow()) > 0
    with sessions() as session:
        left = session.execute(select(ChangeRow.store_id, ChangeRow.entity)).all()
        assert sorted(tuple(r) for r in left) == [("", PRUNED), ("riverside", "alert")]

    page = snapshot(seeded, "ana")
    assert ids(page) == ANAS  # the leads and their histories outlive the feed
    assert [a["id"] for a in page["leads"][1]["activities"]] == ["act-old"]
    # A cursor of 0 (the store's newest, as it has no changes left) would be 410 here.
    resume = seeded.client.get(
        "/v1/changes", params={"since": page["newest"]}, headers=seeded.headers("ana")
    )
    assert resume.status_code == 200, resume.text
    gone = seeded.client.get("/v1/changes?since=0", headers=seeded.headers("ana"))
    assert gone.status_code == 410
    # Later changes of the store are followed from there.
    with transaction(sessions) as session:
        note(session, "L05", T0 + timedelta(hours=1), None, "new note", "act-new")
    follow = pull_changes(seeded, "ana", page["newest"])
    assert [(c["entity"], c["entity_id"]) for c in follow["changes"]] == [("activity", "act-new")]


def test_on_a_pruned_log_with_the_stores_changes_left_newest_is_its_newest(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    write_leads(sessions, {k: v for k, v in LEADS.items() if v[0] == "lakeside"})
    with transaction(sessions) as session:
        note(session, "L03", T0, None, "the newest change", "act-1")
    _age_all_but_the_newest(sessions, days=40)
    with transaction(sessions) as session:
        assert prune_changes(session, timedelta(days=30), utcnow()) > 0
    with sessions() as session:
        newest = session.scalar(select(func.max(ChangeRow.seq)))
    page = snapshot(seeded, "mia")
    assert page["newest"] == newest
    assert pull_changes(seeded, "mia", page["newest"])["changes"] == []


# --- Plans ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["user-ana", "user-mia"])
def test_a_page_seeks_by_index_and_never_sorts_the_store(
    seeded: Seeded, sessions: sessionmaker[Session], user: str
) -> None:
    if not seeded.db_url.startswith("sqlite"):
        pytest.skip("SQLite's plans; PostgreSQL chooses by its statistics")
    write_leads(sessions)
    engine = make_engine(seeded.db_url)
    statements: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    role = Role.AGENT if user == "user-ana" else Role.MANAGER
    principal = Principal(user, role, "lakeside", user)
    event.listen(engine, "before_cursor_execute", remember)
    try:
        with make_sessionmaker(engine)() as session:
            read_snapshot(session, principal, "L01", 2)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    try:
        leads = [(s, p) for s, p in statements if "FROM leads" in s or "FROM activities" in s]
        assert len(leads) == 3, statements  # count, page, histories
        with engine.connect() as connection:
            for statement, params in leads:
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                details = [str(row[-1]) for row in plan]
                # At 50,000 leads sorting the store cost 50 ms a page, reading every lead row
                # to count an agent's 25 ms.
                assert not any(d.startswith("SCAN") for d in details), (statement, details)
                assert "USE TEMP B-TREE FOR ORDER BY" not in details, (statement, details)
                if "count(" in statement:
                    assert all("COVERING INDEX" in d for d in details), (statement, details)
    finally:
        engine.dispose()
