"""The scheduler: every job kind, retries with backoff, leases, and exactly-once with racing
workers (threads with their own connections, and separate processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.domain.activities import Activity, ActivityKind, AppointmentStatus, Direction
from server.db import JobRow, LeadRow, make_engine, make_sessionmaker, transaction
from server.messaging import GatewayUnavailable
from server.rules import get_rules
from server.scheduler import claim_due, enqueue, run_due_jobs, run_job
from server.services.common import add_activity
from server.services.messages import MessagingContext, standalone_context
from server.settings import Settings
from tests.server.fakes import NOW, MessagingEnv, messaging_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(db_url: str, settings: Settings) -> Iterator[MessagingEnv]:
    with messaging_env(db_url, settings) as environment:
        yield environment


def add_job(
    env: MessagingEnv, kind: str, lead_id: str | None, due_at: datetime, **data: object
) -> int:
    with transaction(env.sessions) as session:
        job = enqueue(
            session, kind=kind, store_id="lakeside", lead_id=lead_id, due_at=due_at, data=dict(data)
        )
        assert job is not None
        return job.id


def appointment(
    env: MessagingEnv, lead_id: str, status: AppointmentStatus, slot: datetime, at: datetime
) -> None:
    with transaction(env.sessions) as session:
        row = session.get(LeadRow, lead_id)
        assert row is not None
        add_activity(
            session,
            row,
            Activity(
                id=str(uuid.uuid4()),
                lead_id=lead_id,
                kind=ActivityKind.APPOINTMENT,
                at=at,
                appointment_status=status,
                scheduled_for=slot,
            ),
        )


def job(env: MessagingEnv, job_id: int) -> JobRow:
    with env.sessions() as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        return row


def test_enqueue_is_once_per_dedupe_key(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    with transaction(env.sessions) as session:
        first = enqueue(
            session,
            kind="ack_email",
            store_id="lakeside",
            lead_id=lead_id,
            due_at=NOW,
            dedupe_key="ack:1",
        )
        second = enqueue(
            session,
            kind="ack_email",
            store_id="lakeside",
            lead_id=lead_id,
            due_at=NOW,
            dedupe_key="ack:1",
        )
    assert first is not None and second is None
    assert len(env.jobs()) == 1


def test_acknowledgment_email_goes_out_when_due(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    job_id = add_job(env, "ack_email", lead_id, NOW + timedelta(seconds=30))
    assert run_due_jobs(env.app, NOW, "w1") == 0
    assert run_due_jobs(env.app, NOW + timedelta(seconds=30), "w1") == 1
    [mail] = env.sent_emails()
    assert mail.to == "pat@example.com"
    assert mail.subject == "We received your request about the 2024 Toyota Camry SE"
    assert mail.body.startswith(
        "Hi Pat,\n\nThank you for contacting Lakeside Toyota about the 2024 Toyota Camry SE."
    )
    assert "Ana is pulling the details" in mail.body
    assert "call or text Ana directly at (312) 555-0100." in mail.body  # the agent has no phone
    assert mail.body.endswith(
        "Lakeside Toyota\n2400 N Lake Shore Dr, Chicago, IL 60614\n(312) 555-0100"
    )
    [activity] = env.activities(lead_id)
    assert (activity.kind, activity.direction, activity.automatic) == (
        ActivityKind.EMAIL,
        Direction.OUTBOUND,
        True,
    )
    assert activity.at == NOW + timedelta(seconds=30)
    assert env.lead_row(lead_id).first_attempt_at is None  # not an agent attempt
    assert job(env, job_id).result.startswith("queued message")
    assert all(j.done_at is not None for j in env.jobs())
    assert run_due_jobs(env.app, NOW + timedelta(hours=1), "w1") == 0


def test_acknowledgment_uses_neutral_words_for_missing_details(env: MessagingEnv) -> None:
    lead_id = env.add_lead(agent=None, vehicle=False)
    add_job(env, "ack_email", lead_id, NOW)
    run_due_jobs(env.app, NOW, "w1")
    [mail] = env.sent_emails()
    assert mail.subject == "We received your request about the vehicle"
    assert "and our team is pulling the details" in mail.body
    assert "[" not in mail.body


def test_acknowledgment_is_skipped_for_opted_out_or_unreachable_leads(env: MessagingEnv) -> None:
    opted = env.add_lead(opted_out_at=NOW - timedelta(minutes=1))
    no_mail = env.add_lead(email=None, phone="+13125550124")
    first = add_job(env, "ack_email", opted, NOW)
    second = add_job(env, "ack_email", no_mail, NOW)
    assert run_due_jobs(env.app, NOW, "w1") == 2
    assert env.sent_emails() == []
    assert job(env, first).result.startswith("skipped: OPTED_OUT")
    assert job(env, second).result == "skipped: no valid email address"


def test_reminder_text_two_hours_before(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    slot = NOW + timedelta(hours=2)  # 12:00 in Chicago
    appointment(env, lead_id, AppointmentStatus.SET, slot, NOW - timedelta(days=1))
    add_job(env, "appointment_reminder_text", lead_id, NOW, appointment_at=slot.isoformat())
    run_due_jobs(env.app, NOW, "w1")
    [sms] = env.sent_texts()
    assert sms.to == "+13125550123"
    assert sms.body == (
        "Reminder: your appointment at Lakeside Toyota is at 12:00 PM today. "
        "The 2024 Toyota Camry SE is set aside for you. See you soon!"
    )
    assert [m.template_id for m in env.messages(lead_id)] == ["reminder_2h_text"]


def test_reminder_skipped_when_cancelled_or_in_quiet_hours(env: MessagingEnv) -> None:
    cancelled = env.add_lead()
    slot = NOW + timedelta(hours=2)
    appointment(env, cancelled, AppointmentStatus.SET, slot, NOW - timedelta(days=1))
    appointment(env, cancelled, AppointmentStatus.CANCELLED, slot, NOW - timedelta(hours=1))
    first = add_job(
        env, "appointment_reminder_text", cancelled, NOW, appointment_at=slot.isoformat()
    )
    late = env.add_lead(phone="+13125550124")
    night = datetime(2025, 6, 4, 4, 0, tzinfo=NOW.tzinfo)  # 23:00 in Chicago
    second = add_job(
        env,
        "appointment_reminder_text",
        late,
        night,
        appointment_at=(night + timedelta(hours=2)).isoformat(),
    )
    run_due_jobs(env.app, night, "w1")
    assert env.sent_texts() == []
    assert job(env, first).result == "skipped: appointment already marked cancelled"
    assert job(env, second).result.startswith("skipped: QUIET_HOURS")


def test_no_show_is_marked_unless_the_appointment_was_kept(env: MessagingEnv) -> None:
    missed, kept, moved = (
        env.add_lead(),
        env.add_lead(phone="+13125550124"),
        env.add_lead(phone="+13125550125"),
    )
    slot = NOW - timedelta(minutes=60)
    for lead_id in (missed, kept, moved):
        appointment(env, lead_id, AppointmentStatus.SET, slot, NOW - timedelta(days=1))
    appointment(env, kept, AppointmentStatus.KEPT, slot, slot + timedelta(minutes=5))
    appointment(
        env, moved, AppointmentStatus.SET, NOW + timedelta(days=2), NOW - timedelta(hours=3)
    )
    ids = {
        lead: add_job(env, "no_show_check", lead, NOW, appointment_at=slot.isoformat())
        for lead in (missed, kept, moved)
    }
    assert run_due_jobs(env.app, NOW, "w1") == 3
    [no_show] = [
        a for a in env.activities(missed) if a.appointment_status is AppointmentStatus.NO_SHOW
    ]
    assert (no_show.scheduled_for, no_show.at, no_show.automatic) == (slot, NOW, True)
    assert "60 minutes" in no_show.body
    assert job(env, ids[kept]).result == "skipped: appointment already marked kept"
    assert job(env, ids[moved]).result == "skipped: the appointment was moved to another time"
    for lead_id in (kept, moved):
        assert AppointmentStatus.NO_SHOW not in [
            a.appointment_status for a in env.activities(lead_id)
        ]


def test_confirmation_call_becomes_a_task_for_the_agent(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    slot = NOW + timedelta(days=1)
    job_id = add_job(env, "appointment_confirm_call", lead_id, NOW, appointment_at=slot.isoformat())
    run_due_jobs(env.app, NOW, "w1")
    [task] = env.changes("task")
    assert task.agent_id == "user-ana" and task.entity_id == f"job-{job_id}"
    assert task.data == {
        "id": f"job-{job_id}",
        "kind": "appointment_confirm_call",
        "lead_id": lead_id,
        "title": "Call to confirm the appointment",
        "appointment_at": slot.isoformat(),
        "due_at": NOW.isoformat(),
    }


def test_escalation_calls_routing(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    with transaction(env.sessions) as session:
        session.execute(
            update(LeadRow).where(LeadRow.id == lead_id).values(due_at=NOW - timedelta(minutes=2))
        )
    job_id = add_job(env, "escalate", lead_id, NOW)
    run_due_jobs(env.app, NOW, "w1")
    assert job(env, job_id).result.startswith("alerted")
    assert len(env.changes("alert")) == 1


class DownGateway:
    name = "down"

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        raise GatewayUnavailable("connection refused")


def test_failed_sends_back_off_then_give_up(db_url: str, settings: Settings) -> None:
    with messaging_env(
        db_url,
        settings,
        texts=DownGateway(),
        job_max_attempts=3,
        job_retry_base=timedelta(seconds=10),
    ) as env:
        lead_id = env.add_lead()
        body = {"id": str(uuid.uuid4()), "lead_id": lead_id, "channel": "text", "body": "Hi Pat"}
        assert (
            env.client.post("/v1/messages", json=body, headers=env.headers("ana")).status_code
            == 202
        )
        [send] = env.jobs(lead_id)
        assert (send.attempts, send.due_at) == (1, NOW + timedelta(seconds=10))
        assert run_due_jobs(env.app, NOW + timedelta(seconds=10), "w") == 1
        send = job(env, send.id)
        assert (send.attempts, send.due_at, send.done_at) == (2, NOW + timedelta(seconds=30), None)
        assert send.result == "attempt 2 failed: GatewayUnavailable: connection refused"
        assert run_due_jobs(env.app, NOW + timedelta(seconds=30), "w") == 1
        send = job(env, send.id)
        assert send.done_at == NOW + timedelta(seconds=30)
        assert send.result == "failed after 3 attempts: GatewayUnavailable: connection refused"
        [message] = env.messages(lead_id)
        assert message.status == "failed"
        assert message.reason.startswith("GATEWAY_UNAVAILABLE: gave up after 3 attempts")
        assert run_due_jobs(env.app, NOW + timedelta(days=1), "w") == 0


def test_a_crashed_workers_lease_runs_out_and_the_job_runs_once(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    slot = NOW - timedelta(hours=1)
    job_id = add_job(env, "no_show_check", lead_id, NOW, appointment_at=slot.isoformat())
    [crashed] = claim_due(env.sessions, NOW, "crashed-worker", timedelta(seconds=60))
    assert run_due_jobs(env.app, NOW + timedelta(seconds=59), "w2") == 0  # still leased
    assert run_due_jobs(env.app, NOW + timedelta(seconds=61), "w2") == 1
    assert job(env, job_id).attempts == 2
    # The crashed worker comes back and tries to finish its stale claim: nothing happens twice.
    ctx = standalone_context(env.sessions)
    assert run_job(ctx, crashed, NOW + timedelta(seconds=62)) == "lease lost"
    no_shows = [
        a for a in env.activities(lead_id) if a.appointment_status is AppointmentStatus.NO_SHOW
    ]
    assert len(no_shows) == 1


def test_unknown_job_kind_is_closed_not_retried(env: MessagingEnv) -> None:
    job_id = add_job(env, "launch_rocket", None, NOW)
    assert run_due_jobs(env.app, NOW, "w") == 1
    assert job(env, job_id).result == "failed: unknown job kind 'launch_rocket'"


def _many_jobs(env: MessagingEnv, leads: int) -> list[str]:
    ids = [
        env.add_lead(phone=f"+1312555{1000 + n}", email=f"p{n}@example.com") for n in range(leads)
    ]
    slot = NOW - timedelta(minutes=61)
    for lead_id in ids:
        add_job(
            env,
            "no_show_check",
            lead_id,
            NOW - timedelta(seconds=1),
            appointment_at=slot.isoformat(),
        )
        add_job(env, "ack_email", lead_id, NOW - timedelta(seconds=1))
    return ids


def _assert_exactly_once(env: MessagingEnv, ids: list[str], emails: int) -> None:
    for lead_id in ids:
        activities = env.activities(lead_id)
        assert [a.appointment_status for a in activities if a.kind is ActivityKind.APPOINTMENT] == [
            AppointmentStatus.NO_SHOW
        ]
        assert [a.kind for a in activities].count(ActivityKind.EMAIL) == 1
    jobs = env.jobs()
    assert all(j.done_at is not None for j in jobs)
    assert sorted({j.attempts for j in jobs}) == [1]  # nobody ever claimed a job twice
    assert sorted(m.status for m in env.messages()) == ["sent"] * emails


def test_racing_threads_run_each_job_exactly_once(env: MessagingEnv) -> None:
    ids = _many_jobs(env, 12)
    barrier = threading.Barrier(6)

    def worker(number: int) -> int:
        engine = make_engine(env.db_url)
        ctx = MessagingContext(
            make_sessionmaker(engine),
            env.app.state.settings,
            get_rules(env.app),
            env.app.state.gateways,
        )
        try:
            barrier.wait()
            return run_due_jobs(ctx, NOW, f"thread-{number}")
        finally:
            engine.dispose()

    with ThreadPoolExecutor(6) as pool:
        ran = list(pool.map(worker, range(6)))
    assert sum(ran) >= 24  # 24 jobs queued up front, plus the sends some workers picked up
    assert len(env.sent_emails()) == 12
    assert sorted(m.to for m in env.sent_emails()) == sorted(f"p{n}@example.com" for n in range(12))
    _assert_exactly_once(env, ids, 12)


WORKER_SCRIPT = """
import sys
from datetime import datetime
from server.db import make_engine, make_sessionmaker
from server.scheduler import run_due_jobs
engine = make_engine(sys.argv[1])
sessions = make_sessionmaker(engine)
print(run_due_jobs(sessions, datetime.fromisoformat(sys.argv[2]), sys.argv[3]))
engine.dispose()
"""


def test_racing_processes_run_each_job_exactly_once(env: MessagingEnv) -> None:
    ids = _many_jobs(env, 8)
    environment = os.environ | {"PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, env.db_url, NOW.isoformat(), f"process-{n}"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [w.communicate(timeout=50) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, [err for _, err in outputs]
    assert sum(int(out.strip()) for out, _ in outputs) >= 16
    _assert_exactly_once(env, ids, 8)


def test_the_scheduler_runs_with_the_app(db_url: str, settings: Settings) -> None:
    with messaging_env(
        db_url, settings, run_scheduler=True, scheduler_interval=timedelta(milliseconds=50)
    ) as env:
        assert env.app.state.scheduler is not None
        lead_id = env.add_lead()
        add_job(env, "ack_email", lead_id, NOW)
        deadline = time.monotonic() + 10

        def finished() -> bool:
            # The e-mail leaves before the job's "done" commits: wait for both.
            return bool(env.sent_emails()) and all(j.done_at is not None for j in env.jobs())

        while not finished() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m.to for m in env.sent_emails()] == ["pat@example.com"]
        assert all(j.done_at is not None for j in env.jobs())
