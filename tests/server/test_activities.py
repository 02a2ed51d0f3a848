"""POST /v1/activities: append-only records, batches, who may write, and every effect (status,
do-not-contact and opt-out blocks, appointment jobs, first attempt, rescoring, cadence)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import DispositionFlag as F
from app.domain.cadence import plan
from app.domain.compliance import legal_window_fn
from app.domain.leads import (
    Address,
    Email,
    Lead,
    LeadSource,
    LeadStatus,
    Person,
    SourceType,
)
from app.domain.phones import make_phone
from app.domain.timezones import resolve_zones
from app.rulebook import load_rulebook
from server.db import (
    ActivityRow,
    ChangeRow,
    ContactBlockRow,
    JobRow,
    LeadRow,
    make_engine,
    make_sessionmaker,
    transaction,
)
from server.services import common
from server.services.activities import MAX_BATCH, status_after
from tests.server.conftest import Seeded

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday, 9:00 in Chicago
RULES = load_rulebook()


@dataclass
class World:
    seeded: Seeded
    sessions: sessionmaker[Session]
    ana_lead: str  # assigned to ana
    ben_lead: str  # assigned to ben
    pool_lead: str  # unassigned
    other_store_lead: str  # riverside
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def post(self, user: str, body: Any, key: str | None = None) -> Any:
        if user not in self.tokens:  # signing in (argon2) is slow: once per user
            self.tokens[user] = self.seeded.headers(user)
        headers = {**self.tokens[user], "Idempotency-Key": key or str(uuid.uuid4())}
        return self.seeded.client.post("/v1/activities", json=body, headers=headers)

    def lead(self, lead_id: str) -> LeadRow:
        with self.sessions() as session:
            row = session.get(LeadRow, lead_id)
            assert row is not None
            return row

    def count(self, model: Any, *where: Any) -> int:
        with self.sessions() as session:
            query = select(func.count()).select_from(model)
            for condition in where:
                query = query.where(condition)
            return int(session.scalar(query) or 0)


def _lead(store: str, agent: str | None, phone: str, email: str) -> Lead:
    return Lead(
        id=str(uuid.uuid4()),
        store_id=store,
        received_at=NOW - timedelta(minutes=10),
        person=Person(first_name="Dana", last_name="Reyes"),
        source=LeadSource("Cars.com", SourceType.THIRD_PARTY),
        phones=(make_phone(phone),),
        emails=(Email(email),),
        address=Address(postal_code="60614", state="IL"),
        assigned_agent_id=agent,
    )


@pytest.fixture
def world(seeded: Seeded) -> Iterator[World]:
    seeded.client.app.state.clock = lambda: NOW  # type: ignore[attr-defined]
    engine = make_engine(seeded.db_url)
    sessions = make_sessionmaker(engine)
    ids = []
    with transaction(sessions) as session:
        for store, agent, phone in (
            ("lakeside", "user-ana", "(312) 555-0142"),
            ("lakeside", "user-ben", "(312) 555-0143"),
            ("lakeside", None, "(312) 555-0144"),
            ("riverside", "user-zed", "(212) 555-0145"),
        ):
            lead = _lead(store, agent, phone, f"dana{phone[-4:]}@example.com")
            ids.append(common.save_lead(session, None, lead, score=0).id)
    yield World(seeded, sessions, *ids)
    engine.dispose()


def act(lead_id: str, kind: str, *, minutes: float = 0, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "kind": kind,
        "at": (NOW + timedelta(minutes=minutes)).isoformat(),
        **fields,
    }


def disposition(lead_id: str, code: str, *, minutes: float = 0, **fields: Any) -> dict[str, Any]:
    return act(lead_id, "disposition", minutes=minutes, disposition=code, **fields)


def call(lead_id: str, *, minutes: float = 0, **fields: Any) -> dict[str, Any]:
    fields.setdefault("answered", False)
    return act(lead_id, "call", minutes=minutes, direction="outbound", **fields)


# --- Recording ------------------------------------------------------------------------------------


def _reassign(world: World, lead_id: str, agent_id: str | None) -> None:
    """Mia gives the lead to `agent_id` at NOW (the app's pinned clock)."""
    headers = {**world.seeded.headers("mia"), "Idempotency-Key": str(uuid.uuid4())}
    moved = world.seeded.client.post(
        f"/v1/leads/{lead_id}/assign", json={"agent_id": agent_id}, headers=headers
    )
    assert moved.status_code == 200, moved.text


def test_an_agent_s_activities_from_while_the_lead_was_theirs_land_after_a_reassignment(
    world: World,
) -> None:
    _reassign(world, world.ana_lead, "user-ben")
    # Logged offline while it was still Ana's: accepted, with its effects.
    before = world.post("ana", call(world.ana_lead, minutes=-3))
    assert before.status_code == 201, before.text
    assert before.json()["activities"][0]["activity"]["agent_id"] == "user-ana"
    note = world.post("ana", act(world.ana_lead, "note", minutes=-1, body="left a message"))
    assert note.status_code == 201, note.text
    # Ben (the holder now) sees them in the feed.
    with world.sessions() as session:
        owners = session.scalars(
            select(ChangeRow.agent_id).where(
                ChangeRow.entity == "activity",
                ChangeRow.entity_id == note.json()["activities"][0]["id"],
            )
        ).all()
    assert owners == ["user-ben"]
    # After it was taken from her (beyond a small clock allowance): refused, with the reason.
    late = world.post("ana", act(world.ana_lead, "note", minutes=5))
    assert late.status_code == 403
    detail = late.json()["detail"]
    assert detail.startswith("lead_id: lead") and "was not assigned to you" in detail
    # All or nothing: one activity from after the reassignment refuses the batch.
    batch = {
        "activities": [
            act(world.ana_lead, "note", minutes=-2),
            act(world.ana_lead, "note", minutes=8),
        ]
    }
    refused = world.post("ana", batch)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("activities[1].lead_id")
    assert world.count(ActivityRow, ActivityRow.kind == "note") == 1
    # Another store's agent still gets 404, whatever the time.
    assert world.post("zed", act(world.ana_lead, "note", minutes=-5)).status_code == 404


def test_a_lead_given_back_and_forth_counts_each_holding(world: World) -> None:
    _reassign(world, world.ben_lead, None)  # Ben's lead goes to the pool at NOW
    world.seeded.client.app.state.clock = lambda: NOW + timedelta(minutes=30)  # type: ignore[attr-defined]
    _reassign(world, world.ben_lead, "user-ana")  # ... and to Ana at NOW + 30 min
    world.seeded.client.app.state.clock = lambda: NOW + timedelta(minutes=60)  # type: ignore[attr-defined]
    _reassign(world, world.ben_lead, "user-ben")  # ... and back to Ben at NOW + 60 min
    # Ana: in the pool she could see it, then it was hers; before and after, not.
    assert world.post("ana", act(world.ben_lead, "note", minutes=-8)).status_code == 403
    assert world.post("ana", act(world.ben_lead, "note", minutes=10)).status_code == 201
    assert world.post("ana", act(world.ben_lead, "note", minutes=45)).status_code == 201
    assert world.post("ana", act(world.ben_lead, "note", minutes=70)).status_code == 403


def test_one_activity_is_recorded_with_the_agent_as_author(world: World) -> None:
    body = call(world.ana_lead, agent_id="user-ben")  # an agent cannot write as someone else
    response = world.post("ana", body)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["activities"][0]["outcome"] == "created"
    assert result["activities"][0]["activity"]["agent_id"] == "user-ana"
    with world.sessions() as session:
        row = session.get(ActivityRow, body["id"])
        assert row is not None
        assert (row.agent_id, row.kind, row.store_id) == ("user-ana", "call", "lakeside")
        change = session.scalar(
            select(ChangeRow).where(
                ChangeRow.entity == "activity", ChangeRow.entity_id == body["id"]
            )
        )
        assert change is not None and change.agent_id == "user-ana"
    assert result["leads"][0]["id"] == world.ana_lead
    assert result["leads"][0]["version"] == 2


def test_a_batch_is_recorded_in_one_go(world: World) -> None:
    batch = [
        call(world.ana_lead, minutes=-3),
        disposition(world.ana_lead, "no_answer", minutes=-2),
        act(world.pool_lead, "note", body="called back the pool lead"),
    ]
    response = world.post("ana", {"activities": batch})
    assert response.status_code == 201
    assert [r["id"] for r in response.json()["activities"]] == [a["id"] for a in batch]
    assert {lead["id"] for lead in response.json()["leads"]} == {world.ana_lead, world.pool_lead}
    assert world.count(ActivityRow, ActivityRow.kind.in_(["call", "disposition", "note"])) == 3
    assert world.lead(world.ana_lead).version == 2  # one save per lead per request


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"activities": []}, "activities: the batch is empty"),
        ({"activities": "x"}, "activities: must be an array"),
        ({"activities": [{}] * (MAX_BATCH + 1)}, f"at most {MAX_BATCH}"),
        ({"activities": [], "extra": 1}, "extra: unknown field"),
    ],
)
def test_bad_batches_are_refused(world: World, body: Any, message: str) -> None:
    response = world.post("ana", body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_one_bad_item_refuses_the_whole_batch_naming_it(world: World) -> None:
    batch = [call(world.ana_lead), act(world.ana_lead, "note", at="2026-03-10 noon")]
    response = world.post("ana", {"activities": batch})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("activities[1].at")
    assert world.count(ActivityRow) == 0
    assert world.lead(world.ana_lead).version == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "score_change"}, "kind: 'score_change' activities are recorded by the server"),
        ({"kind": "assignment"}, "recorded by the server"),
        ({"kind": "teleport"}, "kind"),
        ({"id": "not-a-uuid"}, "id: must be a UUID"),
        ({"minutes": 60}, "at: 2026-03-10T16:00:00+00:00 is in the future"),
        ({"surprise": True}, "surprise"),
        ({"kind": "disposition", "disposition": "abducted"}, "disposition: unknown code"),
        ({"kind": "disposition", "disposition": "appointment_set"}, "scheduled_for"),
        ({"kind": "appointment", "appointment_status": "set"}, "scheduled_for"),
    ],
)
def test_bad_activities_are_refused_naming_the_field(
    world: World, fields: dict[str, Any], message: str
) -> None:
    fields = dict(fields)  # parameters are shared by the sqlite and postgresql runs
    minutes = fields.pop("minutes", 0)
    kind = fields.pop("kind", "note")
    body = act(world.ana_lead, kind, minutes=minutes)
    body.update(fields)
    response = world.post("ana", body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert world.count(ActivityRow) == 0


def test_same_id_same_content_is_unchanged_other_content_conflicts(world: World) -> None:
    body = act(world.ana_lead, "note", body="first words")
    assert world.post("ana", body).status_code == 201
    again = world.post("ana", body)  # a new Idempotency-Key: the id decides
    assert again.status_code == 200
    assert again.json()["activities"][0]["outcome"] == "unchanged"
    assert again.json()["leads"] == []
    changed = world.post("ana", {**body, "body": "rewritten history"})
    assert changed.status_code == 409
    assert "append-only" in changed.json()["detail"]
    with world.sessions() as session:
        row = session.get(ActivityRow, body["id"])
        assert row is not None and row.data["body"] == "first words"
    assert world.lead(world.ana_lead).version == 2


def test_who_may_write_where(world: World) -> None:
    # Agents: their own leads and the pool; not a colleague's (403: never theirs), not another
    # store's (404: no probing across stores).
    assert world.post("ana", act(world.pool_lead, "note")).status_code == 201
    refused = world.post("ana", act(world.ben_lead, "note"))
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("lead_id: lead")
    assert "was not assigned to you" in refused.json()["detail"]
    assert world.post("ana", act(world.other_store_lead, "note")).status_code == 404
    assert world.post("rita", act(world.ana_lead, "note")).status_code == 404
    # Managers: the whole store, writing as themselves or as one of their agents.
    mine = world.post("mia", act(world.ben_lead, "note"))
    assert mine.json()["activities"][0]["activity"]["agent_id"] == "user-mia"
    for_ben = world.post("mia", act(world.ben_lead, "note", agent_id="user-ben"))
    assert for_ben.json()["activities"][0]["activity"]["agent_id"] == "user-ben"
    stranger = world.post("mia", act(world.ben_lead, "note", agent_id="user-zed"))
    assert stranger.status_code == 422
    assert "agent_id" in stranger.json()["detail"]
    # Lead providers' keys may not.
    headers = {
        "Authorization": f"Bearer {world.seeded.api_key}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    response = world.seeded.client.post(
        "/v1/activities", json=act(world.ana_lead, "note"), headers=headers
    )
    assert response.status_code == 403
    assert world.count(ActivityRow, ActivityRow.kind == "note") == 3


# --- Effects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "flags", "after"),
    [
        (LeadStatus.NEW, F.ATTEMPT, LeadStatus.WORKING),
        (LeadStatus.CONTACTED, F.ATTEMPT, LeadStatus.CONTACTED),
        (LeadStatus.WORKING, F.ATTEMPT | F.HUMAN_CONTACT, LeadStatus.CONTACTED),
        (LeadStatus.LOST, F.HUMAN_CONTACT, LeadStatus.CONTACTED),
        (LeadStatus.APPOINTMENT, F.HUMAN_CONTACT, LeadStatus.APPOINTMENT),
        (LeadStatus.NEW, F.ATTEMPT | F.HUMAN_CONTACT | F.APPOINTMENT_SET, LeadStatus.APPOINTMENT),
        (LeadStatus.LOST, F.APPOINTMENT_SET, LeadStatus.APPOINTMENT),
        (LeadStatus.APPOINTMENT, F.HUMAN_CONTACT | F.NOT_INTERESTED, LeadStatus.LOST),
        (LeadStatus.APPOINTMENT, F.HUMAN_CONTACT | F.SOLD, LeadStatus.SOLD),
        (LeadStatus.SOLD, F.NOT_INTERESTED, LeadStatus.SOLD),
        (LeadStatus.SOLD, F.DO_NOT_CONTACT, LeadStatus.DO_NOT_CONTACT),
        (LeadStatus.DO_NOT_CONTACT, F.APPOINTMENT_SET | F.SOLD, LeadStatus.DO_NOT_CONTACT),
        (LeadStatus.WORKING, F.BAD_NUMBER | F.ATTEMPT, LeadStatus.WORKING),
        (LeadStatus.NEW, F.NONE, LeadStatus.NEW),
    ],
)
def test_status_after_a_disposition(before: LeadStatus, flags: F, after: LeadStatus) -> None:
    assert status_after(before, flags) is after


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("no_answer", "working"),
        ("contacted_not_ready", "contacted"),
        ("not_interested", "lost"),
        ("sold", "sold"),
        ("do_not_contact", "do_not_contact"),
    ],
)
def test_a_disposition_sets_the_status(world: World, code: str, status: str) -> None:
    response = world.post("ana", disposition(world.ana_lead, code))
    assert response.status_code == 201, response.text
    assert response.json()["leads"][0]["status"] == status
    assert world.lead(world.ana_lead).status == status
    assert world.lead(world.ana_lead).data["status"] == status


def test_flags_come_from_the_catalog_when_the_client_sends_none(world: World) -> None:
    response = world.post("ana", disposition(world.ana_lead, "sold"))
    flags = response.json()["activities"][0]["activity"]["flags"]
    assert flags == ["attempt", "human_contact", "sold"]


def test_do_not_contact_blocks_every_address_and_stops_the_cadence(world: World) -> None:
    response = world.post("ana", disposition(world.ana_lead, "do_not_contact"))
    lead = response.json()["leads"][0]
    assert lead["do_not_call"] is True
    assert lead["cadence"]["state"] == "stopped"
    assert lead["cadence"]["next_steps"] == []
    with world.sessions() as session:
        blocks = session.execute(
            select(ContactBlockRow.address, ContactBlockRow.kind).order_by(ContactBlockRow.address)
        ).all()
    assert [tuple(b) for b in blocks] == [
        ("+13125550142", "dnc"),
        ("dana0142@example.com", "dnc"),
    ]
    assert world.lead(world.ana_lead).data["do_not_call"] is True
    # A second do-not-contact adds no duplicate block.
    assert world.post("ana", disposition(world.ana_lead, "do_not_contact", minutes=1)).is_success
    assert world.count(ContactBlockRow) == 2


def test_opt_out_records_the_time_and_blocks(world: World) -> None:
    response = world.post("ana", act(world.ana_lead, "opt_out", minutes=-1, body="said stop"))
    lead = response.json()["leads"][0]
    assert lead["opted_out_at"] == (NOW - timedelta(minutes=1)).isoformat()
    assert lead["cadence"]["state"] == "stopped"
    assert world.count(ContactBlockRow, ContactBlockRow.kind == "opt_out") == 2
    row = world.lead(world.ana_lead)
    assert row.data["opted_out_at"] == (NOW - timedelta(minutes=1)).isoformat()


def test_a_late_activity_does_not_overwrite_a_newer_outcome(world: World) -> None:
    slot = (NOW + timedelta(days=2)).isoformat()
    world.post("ana", disposition(world.ana_lead, "appointment_set", scheduled_for=slot))
    # An offline laptop syncs an older "not interested" afterwards: the appointment stands.
    late = world.post("ana", disposition(world.ana_lead, "not_interested", minutes=-5))
    assert late.json()["leads"][0]["status"] == "appointment"
    # Do-not-contact is never "late".
    dnc = world.post("ana", disposition(world.ana_lead, "do_not_contact", minutes=-4))
    assert dnc.json()["leads"][0]["status"] == "do_not_contact"


def test_first_attempt_is_the_earliest_agent_call_or_text(world: World) -> None:
    batch = [
        act(world.ana_lead, "text", minutes=-6, direction="outbound", automatic=True),
        act(world.ana_lead, "email", minutes=-5, direction="outbound"),
        call(world.ana_lead, minutes=-2),
        act(world.ana_lead, "text", minutes=-4, direction="outbound"),
    ]
    response = world.post("ana", {"activities": batch})
    lead = response.json()["leads"][0]
    assert lead["first_attempt_at"] == (NOW - timedelta(minutes=4)).isoformat()
    assert lead["status"] == "working"
    row = world.lead(world.ana_lead)
    assert row.first_attempt_at == NOW - timedelta(minutes=4)
    # A later call does not move it.
    world.post("ana", call(world.ana_lead, minutes=1))
    assert world.lead(world.ana_lead).first_attempt_at == NOW - timedelta(minutes=4)


def _jobs(world: World) -> list[tuple[str, datetime, bool, str]]:
    with world.sessions() as session:
        rows = session.scalars(select(JobRow).order_by(JobRow.id)).all()
        return [(j.kind, j.due_at, j.done_at is not None, j.dedupe_key) for j in rows]


def test_an_appointment_queues_its_reminders(world: World) -> None:
    slot = NOW + timedelta(days=2, hours=3)
    body = disposition(world.ana_lead, "appointment_set", scheduled_for=slot.isoformat())
    response = world.post("ana", body)
    assert response.json()["leads"][0]["status"] == "appointment"
    assert response.json()["leads"][0]["cadence"]["appointment_at"] == slot.isoformat()
    assert _jobs(world) == [
        ("appointment_confirm_call", slot - timedelta(hours=24), False,
         f"appointment_confirm_call:{body['id']}"),
        ("appointment_reminder_text", slot - timedelta(hours=2), False,
         f"appointment_reminder_text:{body['id']}"),
        ("no_show_check", slot + timedelta(minutes=60), False, f"no_show_check:{body['id']}"),
    ]  # fmt: skip


def test_a_rescheduled_appointment_supersedes_and_a_soon_one_skips_the_day_before_call(
    world: World,
) -> None:
    first = NOW + timedelta(days=3)
    world.post(
        "ana", disposition(world.ana_lead, "appointment_set", scheduled_for=first.isoformat())
    )
    soon = NOW + timedelta(hours=5)
    moved = act(
        world.ana_lead,
        "appointment",
        minutes=1,
        appointment_status="set",
        scheduled_for=soon.isoformat(),
    )
    world.post("ana", moved)
    jobs = _jobs(world)
    assert [(kind, done) for kind, _, done, _ in jobs[:3]] == [
        ("appointment_confirm_call", True),
        ("appointment_reminder_text", True),
        ("no_show_check", True),
    ]
    assert [(kind, due, done) for kind, due, done, _ in jobs[3:]] == [
        ("appointment_reminder_text", soon - timedelta(hours=2), False),
        ("no_show_check", soon + timedelta(minutes=60), False),
    ]
    cancelled = act(world.ana_lead, "appointment", minutes=2, appointment_status="cancelled")
    response = world.post("ana", cancelled)
    assert response.json()["leads"][0]["status"] == "contacted"
    assert all(done for _, _, done, _ in _jobs(world))


def test_rescoring_adds_a_score_change_only_when_the_score_moves(world: World) -> None:
    first = world.post("ana", act(world.ana_lead, "note", body="hello"))
    added = first.json()["added"]
    assert len(added) == 1  # the lead was stored unscored (0): its first score is a change
    change = added[0]
    assert change["kind"] == "score_change"
    assert change["automatic"] is True
    score = first.json()["leads"][0]["score"]
    assert change["score"] == score > 0
    assert change["body"].startswith("Score 0 (low, grade C) -> ")
    assert world.lead(world.ana_lead).score == score
    second = world.post("ana", act(world.ana_lead, "note", minutes=1, body="again"))
    assert second.json()["added"] == []
    assert world.count(ActivityRow, ActivityRow.kind == "score_change") == 1


def test_the_cadence_plan_travels_in_the_lead_change(world: World) -> None:
    ack = act(world.ana_lead, "email", minutes=-10, direction="outbound", automatic=True)
    response = world.post("ana", {"activities": [ack, call(world.ana_lead, minutes=-4)]})
    cadence = response.json()["leads"][0]["cadence"]
    # By hand from resources/cadences/internet_new.toml: after the acknowledgment, an unanswered
    # first call is followed by the first text 5 minutes later and the second call 4 hours after
    # the first.
    assert cadence["state"] == "active"
    assert cadence["cadence_id"] == "internet_new"
    assert cadence["zone"] == "America/Chicago"
    steps = cadence["next_steps"]
    assert (steps[0]["step_id"], steps[0]["channel"]) == ("first_text", "text")
    assert steps[0]["due_at"] == (NOW + timedelta(minutes=1)).isoformat()
    second_call = next(s for s in steps if s["step_id"] == "second_call")
    assert second_call["due_at"] == (NOW - timedelta(minutes=4) + timedelta(hours=4)).isoformat()
    # The lead change every client pulls carries the same plan, and it is the domain engine's.
    with world.sessions() as session:
        change = session.scalar(
            select(ChangeRow)
            .where(ChangeRow.entity == "lead", ChangeRow.entity_id == world.ana_lead)
            .order_by(ChangeRow.seq.desc())
        )
        assert change is not None
        assert change.data["cadence"] == cadence
        assert change.data["version"] == 2
        lead = common.lead_of(session.get(LeadRow, world.ana_lead))  # type: ignore[arg-type]
        history = common.history_of(session, world.ana_lead)
    resolution = resolve_zones(lead, RULES.zip_table, fallback_zone="America/Chicago")
    expected = plan(
        RULES.cadences.values(),
        lead,
        history,
        NOW,
        zone=resolution.primary_zone,
        legal_window=legal_window_fn(RULES.calling_rules, resolution),
    )
    assert [s["due_at"] for s in steps] == [s.due_at.isoformat() for s in expected.next_steps]


def test_a_bad_number_is_noted(world: World) -> None:
    response = world.post("ana", disposition(world.ana_lead, "bad_number", phone="+13125550142"))
    assert response.json()["leads"][0]["cadence"]["bad_numbers"] == ["+13125550142"]
