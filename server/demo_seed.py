"""`bdc-server seed-demo`: a realistic, deterministic demo dealer group, built through the server's
own services so every lead is what a real one would be.

Two rooftops of "Lakeside Auto Group" (Lakeside Toyota in Chicago, its Evanston store), agents, a
manager per store and an admin (DEMO_USERS, all with DEMO_PASSWORD), and a lead provider's API key.
Leads come from app.demo.generator (same seed, same people, vehicles, sources and histories) and
are replayed in time order on a simulated clock, each step through the real services:

- a lead arrives as a JSON document through the intake (parse, validate, normalize, score, de-dupe,
  route round robin, clocks, acknowledgment and escalation jobs, raw payload kept for audit);
- agents are on the floor while the store is open (presence rows with heartbeats), so leads that
  arrive after hours wait in the unassigned pool until the escalation job hands them out;
- the scheduler runs every job when it falls due (acknowledgment e-mails through the log gateway,
  escalations, appointment confirmations, reminders, no-show marking);
- agents' calls, dispositions and appointments are posted as activities (status, rescoring,
  cadence, appointment jobs); a pool lead is claimed first. Agent work the generator timed while
  the store was closed moves to the next opening;
- agents' texts and e-mails go through the messaging service (compliance re-checked at send time;
  a refused one is simply not sent), customers' replies through the inbound-SMS handler (STOP
  opts the number out on every channel and queues one confirmation).

Deterministic: the same `now` and lead count give the same stores, users, leads, ids and
histories (only the ids of rows the server generates itself — score changes, messages — vary).
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.demo.generator import DEMO_AGENTS, DEMO_STORE, demo_leads, intake_document
from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.clocks import BusinessHours, is_open, next_opening
from app.domain.codec import activity_to_dict
from app.domain.leads import Channel, Lead
from app.domain.scoring import score_change_activity, score_changed, score_lead
from app.rulebook import Rulebook
from server import scheduler
from server.auth import Principal, Role, create_api_key, hash_password
from server.db import JobRow, LeadRow, PresenceRow, StoreRow, UserRow, transaction
from server.services import presence, routing
from server.services.activities import ActivityProblem, post_activities
from server.services.common import add_activity, dealership_of, history_of, lead_of, save_lead
from server.services.intake import (
    IncomingLead,
    IntakeRejected,
    ingest,
    leads_from_json,
    parse_json_document,
    record_payload,
)
from server.services.messages import (
    MessageIdInUse,
    MessageRefused,
    MessagingContext,
    NewMessage,
    automatic_body,
    create_message,
    handle_inbound_sms,
    standalone_context,
)
from server.settings import Settings

log = logging.getLogger("bdc.demo_seed")

DEMO_PASSWORD = "lakeside-demo"
GROUP_ID = "lakeside-auto-group"
SEED = 7
SECOND_SEED = 11
API_KEY_NAME = "Demo lead provider"
_IDS = uuid.UUID("0b7e4d8c-4a57-4f0e-9a52-2f1c6f1d5e01")


@dataclass(frozen=True, slots=True)
class DemoStore:
    id: str
    name: str
    time_zone: str
    state: str
    postal_code: str
    phone: str
    address: str
    market_zips: str
    share: float  # of the leads


STORES = (
    DemoStore(
        DEMO_STORE.id,
        DEMO_STORE.name,
        DEMO_STORE.time_zone,
        DEMO_STORE.state,
        DEMO_STORE.postal_code,
        DEMO_STORE.phone,
        DEMO_STORE.address,
        ",".join(DEMO_STORE.market_zips),
        0.8,
    ),
    DemoStore(
        "evanston",
        "Lakeside Toyota of Evanston",
        "America/Chicago",
        "IL",
        "60201",
        "+18475550100",
        "1700 Chicago Ave, Evanston, IL 60201",
        "602,600,606",
        0.2,
    ),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    id: str
    username: str
    name: str
    role: str
    store_id: str
    phone: str = ""


DEMO_USERS = (
    *(
        DemoUser(a.id, a.id.removeprefix("agent-"), a.name, "agent", DEMO_STORE.id, a.phone)
        for a in DEMO_AGENTS
    ),
    DemoUser("manager-morgan", "morgan", "Morgan Reyes", "manager", DEMO_STORE.id, "+13125550110"),
    DemoUser("admin", "admin", "Lakeside IT", "admin", DEMO_STORE.id),
    DemoUser("agent-eli", "eli", "Eli Brooks", "agent", "evanston", "+18475550101"),
    DemoUser("agent-fay", "fay", "Fay Lindqvist", "agent", "evanston", "+18475550102"),
    DemoUser("manager-gus", "gus", "Gus Haddad", "manager", "evanston", "+18475550110"),
)


class SeedError(Exception):
    """The database cannot take the demo data (e.g. a demo username is taken)."""


@dataclass
class SeedSummary:
    already_seeded: bool = False
    leads: int = 0
    merged: int = 0
    rejected: int = 0
    activities: int = 0
    messages_sent: int = 0
    messages_refused: int = 0
    replies: int = 0
    jobs_run: int = 0
    api_key: str | None = None
    per_store: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.already_seeded:
            counts = ", ".join(f"{s}: {n} leads" for s, n in self.per_store.items())
            return (
                f"the demo data is already in this database ({counts}); nothing was changed.\n"
                f"Sign in as any demo user with the password '{DEMO_PASSWORD}'."
            )
        lines = [
            f"seeded the demo dealer group '{GROUP_ID}':",
            *(
                f"  store '{s.id}' ({s.name}, {s.time_zone}): {self.per_store.get(s.id, 0)} leads"
                for s in STORES
            ),
            f"  {self.leads} lead documents taken in ({self.merged} merged as duplicates, "
            f"{self.rejected} rejected), "
            f"{self.activities} agent activities, {self.messages_sent} messages sent "
            f"({self.messages_refused} refused by compliance), {self.replies} customer replies, "
            f"{self.jobs_run} scheduled jobs run",
            "",
            f"demo users (password for all: {DEMO_PASSWORD}):",
            *(f"  {u.username:<8} {u.role:<8} {u.store_id:<10} {u.name}" for u in DEMO_USERS),
        ]
        if self.api_key:
            lines += [
                "",
                f"lead provider API key for store '{DEMO_STORE.id}' ({API_KEY_NAME}), shown once:",
                f"  {self.api_key}",
            ]
        return "\n".join(lines)


def seed_demo(
    sessions: sessionmaker[Session],
    count: int = 400,
    *,
    now: datetime | None = None,
    rules: Rulebook | None = None,
    settings: Settings | None = None,
) -> SeedSummary:
    """Seed the demo group into a migrated database; a second run changes nothing (the summary
    says so). Raises SeedError when the database holds conflicting users."""
    if count < 1:
        raise SeedError("--leads: at least 1")
    with transaction(sessions) as session:
        if session.get(StoreRow, DEMO_STORE.id) is not None:
            return SeedSummary(already_seeded=True, per_store=_lead_counts(session))
        taken = session.scalars(
            select(UserRow.username).where(UserRow.username.in_([u.username for u in DEMO_USERS]))
        ).all()
        if taken:
            raise SeedError(
                f"usernames {', '.join(sorted(taken))} exist already in this database; seed the "
                "demo into an empty database (a new --db)"
            )
        if session.get(StoreRow, STORES[1].id) is not None:
            raise SeedError(f"store '{STORES[1].id}' exists already; use an empty database")
        api_key = _create_stores_and_users(session)
    ctx = standalone_context(sessions)
    if rules is not None or settings is not None:
        ctx = replace(ctx, rules=rules or ctx.rules, settings=settings or ctx.settings)
    from server.db import utcnow

    now = now or utcnow()
    summary = _Replay(ctx, now).run(count)
    summary.api_key = api_key
    with transaction(sessions) as session:
        summary.per_store = _lead_counts(session)
    return summary


def _lead_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(LeadRow.store_id, func.count()).group_by(LeadRow.store_id).order_by(LeadRow.store_id)
    ).all()
    return {str(store): int(n) for store, n in rows}


def _create_stores_and_users(session: Session) -> str:
    for s in STORES:
        session.add(
            StoreRow(
                id=s.id,
                group_id=GROUP_ID,
                name=s.name,
                time_zone=s.time_zone,
                state=s.state,
                postal_code=s.postal_code,
                phone=s.phone,
                address=s.address,
                market_zips=s.market_zips,
            )
        )
    session.flush()
    password_hash = hash_password(DEMO_PASSWORD)  # argon2 is slow on purpose: hash once
    for u in DEMO_USERS:
        session.add(
            UserRow(
                id=u.id,
                username=u.username,
                display_name=u.name,
                password_hash=password_hash,
                role=u.role,
                store_id=u.store_id,
                phone=u.phone,
            )
        )
    session.flush()
    return create_api_key(session, API_KEY_NAME, DEMO_STORE.id)


# --- The replay -----------------------------------------------------------------------------------


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    run: Callable[[datetime], None] = field(compare=False)


class _Replay:
    def __init__(self, ctx: MessagingContext, now: datetime) -> None:
        self.ctx = ctx
        self.now = now
        self.summary = SeedSummary()
        self.owner = f"seed-demo:{uuid.uuid4().hex[:8]}"
        self.clock = now - timedelta(days=365)
        self.hours: dict[str, BusinessHours] = {}
        self.agents: dict[str, list[str]] = {}
        self.rng = random.Random(SEED)

    # ---- the plan

    def run(self, count: int) -> SeedSummary:
        from server.rules import store_hours

        with transaction(self.ctx.sessions) as session:
            for s in STORES:
                store = session.get(StoreRow, s.id)
                assert store is not None
                self.hours[s.id] = store_hours(self.ctx.rules, store)
                self.agents[s.id] = [
                    u.id for u in DEMO_USERS if u.store_id == s.id and u.role == "agent"
                ]
        events: list[_Event] = []
        second = max(1, round(count * STORES[1].share)) if count > 1 else 0
        plans = [(STORES[0], count - second, SEED), (STORES[1], second, SECOND_SEED)]
        for store, n, seed in plans:
            if n <= 0:
                continue
            for lead, history in demo_leads(self.now, n, seed=seed):
                lead = replace(lead, store_id=store.id)
                self._plan_lead(events, store, lead, history)
        events.sort()
        for event in events:
            if event.at > self.now:
                continue
            self._advance(event.at)
            event.run(event.at)
        self._advance(self.now)
        with transaction(self.ctx.sessions) as session:
            presence.mark_offline(session, self.now, self.ctx.settings.heartbeat_timeout)
        return self.summary

    def _plan_lead(
        self, events: list[_Event], store: DemoStore, lead: Lead, history: list[Activity]
    ) -> None:
        order = len(events)
        hours = self.hours[store.id]
        visits = [a for a in history if a.kind is ActivityKind.WEB_VISIT]
        events.append(
            _Event(lead.received_at, order, lambda at: self._arrive(store, lead, visits, at))
        )
        # The desktop sends the slot with an "appointment set" disposition.
        slots = {
            a.at: a.scheduled_for
            for a in history
            if a.kind is ActivityKind.APPOINTMENT and a.scheduled_for is not None
        }
        history = [
            replace(a, scheduled_for=slots.get(a.at))
            if a.kind is ActivityKind.DISPOSITION and a.scheduled_for is None and a.at in slots
            else a
            for a in history
        ]
        # Agent work only while the store is open; later steps keep their spacing.
        offset = timedelta(0)
        for n, activity in enumerate(history):
            if (
                activity.kind in (ActivityKind.WEB_VISIT, ActivityKind.OPT_OUT)
                or activity.automatic
            ):
                continue  # visits come with the lead; the server sends and opts out itself
            at = activity.at + offset
            if activity.agent_id is not None and not is_open(hours, at):
                opened = next_opening(hours, at) + timedelta(minutes=self.rng.randint(3, 40))
                offset += opened - at
                at = opened
            shifted = replace(activity, at=at)
            if shifted.scheduled_for is not None:
                slot = shifted.scheduled_for + offset
                if not is_open(hours, slot):
                    slot = next_opening(hours, slot) + timedelta(hours=1)
                shifted = replace(shifted, scheduled_for=slot)
            events.append(
                _Event(at, order + n + 1, lambda when, a=shifted: self._act(store, lead, a, when))
            )

    # ---- the clock: the floor and the scheduler catch up to each event

    def _advance(self, to: datetime) -> None:
        while True:
            with transaction(self.ctx.sessions) as session:
                due = session.scalar(
                    select(func.min(JobRow.due_at)).where(
                        JobRow.done_at.is_(None), JobRow.due_at <= to
                    )
                )
            if due is None:
                break
            at = max(due, self.clock)
            self._floor(at)
            ran = scheduler.run_due_jobs(self.ctx, at, self.owner)
            self.summary.jobs_run += ran
            if ran == 0:
                self.clock = at + timedelta(seconds=1)  # a job waiting on its lease: move on
                if self.clock > to:
                    break
            else:
                self.clock = at
        self.clock = max(self.clock, to)
        self._floor(self.clock)

    def _floor(self, at: datetime) -> None:
        """Agents are on the floor (heartbeating, available) while their store is open."""
        with transaction(self.ctx.sessions) as session:
            for store_id, agent_ids in self.agents.items():
                if not is_open(self.hours[store_id], at):
                    continue
                for agent_id in agent_ids:
                    row = session.get(PresenceRow, agent_id)
                    if row is None:
                        presence.heartbeat(
                            session,
                            _principal(agent_id, Role.AGENT, store_id),
                            now=at,
                            timeout=self.ctx.settings.heartbeat_timeout,
                        )
                    elif row.last_heartbeat < at:
                        if row.state == presence.OFFLINE or not row.logged_in:
                            row.state, row.logged_in, row.since = "available", True, at
                        row.last_heartbeat = at

    # ---- the events

    def _arrive(self, store: DemoStore, lead: Lead, visits: list[Activity], at: datetime) -> None:
        body = json.dumps(intake_document(lead)).encode()
        principal = f"integration:demo {lead.source.name}"
        try:
            incoming = leads_from_json(
                parse_json_document(body),
                store_id=store.id,
                received_at=at,
                default_source=lead.source,
            )
        except IntakeRejected as exc:  # real feeds send junk too: kept for audit, no lead
            with transaction(self.ctx.sessions) as session:
                record_payload(
                    session,
                    store_id=store.id,
                    principal=principal,
                    content_type="application/json",
                    body=body,
                    outcome="rejected",
                    problems=exc.problems,
                    received_at=at,
                )
            self.summary.rejected += 1
            return
        # The generator's ids, so the demo is the same each time.
        incoming = [
            IncomingLead(replace(i.lead, id=lead.id), i.resend, i.warnings) for i in incoming
        ]
        with transaction(self.ctx.sessions) as session:
            store_row = session.get(StoreRow, store.id)
            assert store_row is not None
            outcomes = ingest(
                session,
                store=store_row,
                leads=incoming,
                rules=self.ctx.rules,
                settings=self.ctx.settings,
                now=at,
            )
            record_payload(
                session,
                store_id=store.id,
                principal=principal,
                content_type="application/json",
                body=body,
                outcome="accepted",
                lead_ids=[o.lead_id for o in outcomes],
                received_at=at,
            )
            self.summary.leads += 1
            merged = outcomes[0].merged_into is not None
            self.summary.merged += merged
            row = session.get(LeadRow, outcomes[0].lead_id)
            assert row is not None
            if visits and not merged:
                for visit in visits:
                    add_activity(session, row, replace(visit, lead_id=row.id))
                self._rescore(session, store_row, row, at)

    def _rescore(self, session: Session, store: StoreRow, row: LeadRow, at: datetime) -> None:
        from app.domain.scoring import Grade, LeadScore, Tier

        lead = lead_of(row)
        history = history_of(session, row.id)
        after = score_lead(self.ctx.rules.scoring, lead, dealership_of(store), history)
        before = LeadScore(row.score, Tier(row.tier), Grade(row.grade), "", (), row.score)
        if not score_changed(before, after):
            return
        activity_id = str(uuid.uuid5(_IDS, f"visits:{row.id}"))
        add_activity(
            session,
            row,
            score_change_activity(before, after, lead_id=row.id, at=at, activity_id=activity_id),
        )
        save_lead(
            session, row, lead, score=after.score, tier=after.tier.value, grade=after.grade.value
        )

    def _act(self, store: DemoStore, lead: Lead, activity: Activity, at: datetime) -> None:
        if activity.kind is ActivityKind.TEXT and activity.direction is Direction.INBOUND:
            self._reply(store, lead, activity, at)
        elif activity.kind in (ActivityKind.TEXT, ActivityKind.EMAIL):
            self._send(store, lead, activity, at)
        else:
            self._post(store, lead, activity, at)

    def _owner(self, session: Session, store: DemoStore, lead_id: str, at: datetime) -> str | None:
        """The lead's agent; a pool lead is claimed by whoever is free (else the first agent)."""
        row = session.get(LeadRow, lead_id)
        if row is None:
            return None
        if row.assigned_agent_id is not None:
            return row.assigned_agent_id
        agent_id = routing.pick_agent(session, store.id, at, self.ctx.settings)
        agent_id = agent_id or self.agents[store.id][0]
        routing.claim(session, store.id, agent_id, lead_id, at)
        return agent_id

    def _post(self, store: DemoStore, lead: Lead, activity: Activity, at: datetime) -> None:
        with transaction(self.ctx.sessions) as session:
            lead_row = session.get(LeadRow, lead.id)
            if lead_row is None:
                return
            if lead_of(lead_row).opted_out_at is not None and (
                activity.kind is not ActivityKind.APPOINTMENT
            ):
                return  # merged away, or the customer opted out: agents stop
            agent_id = self._owner(session, store, lead.id, at)
            if agent_id is None:
                return
            principal = _principal(agent_id, Role.AGENT, store.id)
            activity = replace(activity, agent_id=agent_id if activity.agent_id else None)
            body = activity_to_dict(activity)
            try:
                with session.begin_nested():
                    post_activities(session, principal, body, rules=self.ctx.rules, now=at)
            except ActivityProblem as exc:  # the demo must not stop for one odd activity
                log.warning("demo activity %s skipped: %s", activity.id, exc.message)
                return
            self.summary.activities += 1

    def _send(self, store: DemoStore, lead: Lead, activity: Activity, at: datetime) -> None:
        """An agent's text or e-mail: the generator's first text and its e-mails become the
        shipped templates, filled in for this lead and agent; a reply in a conversation is sent
        as the agent typed it."""
        channel = Channel.TEXT if activity.kind is ActivityKind.TEXT else Channel.EMAIL
        template_id: str | None = None
        if channel is Channel.EMAIL:
            template_id = "personal_email"
        elif (activity.body or "").startswith("Hi, this is"):
            template_id = "first_text"
        job_id = None
        with transaction(self.ctx.sessions) as session:
            lead_row = session.scalar(
                select(LeadRow).where(LeadRow.id == lead.id).with_for_update()
            )
            if lead_row is None:
                return
            agent_id = self._owner(session, store, lead.id, at)
            if agent_id is None:
                return
            store_row = session.get(StoreRow, store.id)
            assert store_row is not None
            subject, body = "", activity.body or "What time works for a quick call?"
            try:
                if template_id is not None:
                    agent = session.get(UserRow, agent_id)
                    subject, body = automatic_body(
                        self.ctx.rules, template_id, lead_of(lead_row), store_row, agent
                    )
                request = NewMessage(
                    id=str(uuid.uuid5(_IDS, f"message:{activity.id}")),
                    lead_id=lead.id,
                    channel=channel,
                    body=body,
                    subject=subject,
                    template_id=template_id,
                )
                with session.begin_nested():
                    _, job_id = create_message(
                        session, self.ctx.rules, lead_row, request, agent_id, at
                    )
            except MessageRefused:
                self.summary.messages_refused += 1
                return
            except MessageIdInUse:
                return
        if job_id is not None:
            scheduler.run_now(self.ctx, job_id, at, self.owner)
            self.summary.messages_sent += 1

    def _reply(self, store: DemoStore, lead: Lead, activity: Activity, at: datetime) -> None:
        with transaction(self.ctx.sessions) as session:
            row = session.get(LeadRow, lead.id)
            phone = lead_of(row).text_phone if row is not None else None
        if phone is None or phone.e164 is None:
            return
        form = {
            "MessageSid": "SM" + uuid.uuid5(_IDS, f"reply:{activity.id}").hex,
            "From": phone.e164,
            "To": store.phone,
            "Body": activity.body or "",
        }
        outcome = handle_inbound_sms(self.ctx, form, at)
        for job_id in outcome.jobs:
            scheduler.run_now(self.ctx, job_id, at, self.owner)
        self.summary.replies += 1


def _principal(user_id: str, role: Role, store_id: str) -> Principal:
    return Principal(id=user_id, role=role, store_id=store_id, name=user_id)


# The benchmarks import the old name.
lead_document = intake_document


def demo_usernames() -> Iterable[str]:
    return (u.username for u in DEMO_USERS)
