"""Scheduled work — acknowledgment e-mails, escalations, appointment confirmations, reminders,
no-show marking, message retries — each run exactly once, even with several API processes.

A process claims a due job by writing its name and a lease expiry onto the row, with a conditional
UPDATE that only succeeds while nobody else holds a live lease (on PostgreSQL the candidates are
picked with SELECT ... FOR UPDATE SKIP LOCKED first, so processes do not queue behind each other).
A job's database effects and its "done" mark commit in one transaction that re-checks the lease
under a row lock, so a job whose lease was taken over can never apply twice. A job that fails is
retried with exponential backoff up to Settings.job_max_attempts; a process that dies mid-job
leaves a lease that simply runs out.

Jobs are rows in `jobs` (server.db.JobRow), added with `enqueue` (a dedupe key makes re-adding the
same job a no-op). Kinds and their `data`:
- ack_email                  the automatic acknowledgment e-mail (template ack_email)
- escalate                   server.services.routing.escalate(session, lead_row, now, settings)
- appointment_confirm_call   {"appointment_at": iso} — a "task" change: call to confirm
- appointment_reminder_text  {"appointment_at": iso} — the reminder_2h_text template, if compliant
- no_show_check              {"appointment_at": iso} — marks a no-show unless kept/cancelled/moved
- send_message               {"message_id", "purpose", "agent_id", "automatic"} — delivery
- call_watch                 {"call_id"} — ends a server-bridged call whose provider went quiet
                             (server/calls/service.py: watch_job)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.db import JobRow, transaction
from server.rules import clock_of
from server.settings import Settings

if TYPE_CHECKING:
    from server.services.messages import MessagingContext

log = logging.getLogger("bdc.scheduler")

_ROUNDS = 10  # jobs queued by jobs (a reminder's send) run in the same tick, up to this deep
_BATCH = 50


class LeaseLost(Exception):
    """Another process took this job over (our lease ran out): leave it to them."""


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    store_id: str
    lead_id: str | None
    due_at: datetime
    data: dict[str, Any]
    attempts: int  # including this one
    owner: str


def new_owner() -> str:
    """A name for this process's claims: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def enqueue(
    session: Session,
    *,
    kind: str,
    store_id: str,
    lead_id: str | None,
    due_at: datetime,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
) -> JobRow | None:
    """Add a job in the caller's transaction; None when a job with `dedupe_key` already exists
    (so "the acknowledgment for lead X" is scheduled once however often intake is retried)."""
    key = dedupe_key or f"{kind}:{uuid.uuid4()}"
    if session.scalar(select(JobRow.id).where(JobRow.dedupe_key == key)) is not None:
        return None
    row = JobRow(
        kind=kind,
        dedupe_key=key,
        store_id=store_id,
        lead_id=lead_id,
        due_at=due_at,
        data=dict(data or {}),
    )
    try:
        with session.begin_nested():  # a concurrent insert of the same key loses quietly
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def _claimed(row: JobRow, owner: str) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        store_id=row.store_id,
        lead_id=row.lead_id,
        due_at=row.due_at,
        data=dict(row.data or {}),
        attempts=row.attempts,
        owner=owner,
    )


def _free(now: datetime) -> Any:
    return or_(JobRow.lease_until.is_(None), JobRow.lease_until < now)


def _take(session: Session, job_id: int, now: datetime, owner: str, lease: timedelta) -> bool:
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.done_at.is_(None), _free(now))
        .values(lease_owner=owner, lease_until=now + lease, attempts=JobRow.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def claim_due(
    sessions: sessionmaker[Session],
    now: datetime,
    owner: str,
    lease: timedelta,
    limit: int = _BATCH,
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs to `owner`; each job goes to exactly one claimant."""
    with transaction(sessions) as session:
        query = (
            select(JobRow.id)
            .where(JobRow.done_at.is_(None), JobRow.due_at <= now, _free(now))
            .order_by(JobRow.due_at, JobRow.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        taken = [job_id for job_id in ids if _take(session, job_id, now, owner, lease)]
        rows = session.scalars(select(JobRow).where(JobRow.id.in_(taken))).all() if taken else []
        return sorted((_claimed(r, owner) for r in rows), key=lambda j: (j.due_at, j.id))


def claim(
    sessions: sessionmaker[Session], job_id: int, now: datetime, owner: str, lease: timedelta
) -> ClaimedJob | None:
    """Lease one job (due or not) to `owner`, e.g. to deliver a message the moment it is queued;
    None when it is done or another process holds it."""
    with transaction(sessions) as session:
        if not _take(session, job_id, now, owner, lease):
            return None
        row = session.get(JobRow, job_id)
        assert row is not None
        session.refresh(row)
        return _claimed(row, owner)


def assert_owned(session: Session, job: ClaimedJob) -> JobRow:
    """Lock the job row and check the lease is still ours (else LeaseLost): a job's effects are
    written under this lock, in the transaction that marks it done."""
    row = session.scalar(
        select(JobRow)
        .where(JobRow.id == job.id, JobRow.lease_owner == job.owner, JobRow.done_at.is_(None))
        .with_for_update()
    )
    if row is None:
        raise LeaseLost(f"job {job.id} ({job.kind}) is no longer leased to {job.owner}")
    return row


def finish(
    session: Session, job: ClaimedJob, now: datetime, result: str, *, strict: bool = True
) -> None:
    """Mark the job done in the caller's transaction. `strict`: only while our lease holds (else
    LeaseLost, rolling back the job's effects); not strict: record an outcome that happened
    outside the database (a message the gateway accepted) whoever holds the lease now."""
    conditions = [JobRow.id == job.id, JobRow.done_at.is_(None)]
    if strict:
        conditions.append(JobRow.lease_owner == job.owner)
    done = session.execute(
        update(JobRow)
        .where(*conditions)
        .values(done_at=now, lease_until=None, result=result[:2000])
        .execution_options(synchronize_session=False)
    )
    if strict and int(getattr(done, "rowcount", 0) or 0) != 1:
        raise LeaseLost(f"job {job.id} ({job.kind}) was taken over before it finished")


def _retry_or_give_up(
    ctx: MessagingContext, job: ClaimedJob, now: datetime, error: BaseException
) -> None:
    settings = ctx.settings
    text = f"{type(error).__name__}: {error}"[:1500]
    with transaction(ctx.sessions) as session:
        row = session.scalar(
            select(JobRow)
            .where(JobRow.id == job.id, JobRow.lease_owner == job.owner, JobRow.done_at.is_(None))
            .with_for_update()
        )
        if row is None:
            return
        if job.attempts >= settings.job_max_attempts:
            row.done_at = now
            row.lease_until = None
            row.result = f"failed after {job.attempts} attempts: {text}"
            _give_up(session, job, now, text)
            log.error("job %s (%s) failed for good: %s", job.id, job.kind, text)
            return
        delay = settings.job_retry_base * (2 ** (job.attempts - 1))
        row.due_at = now + delay
        row.lease_owner = None
        row.lease_until = None
        row.result = f"attempt {job.attempts} failed: {text}"
        log.warning("job %s (%s) attempt %s failed, retry in %s: %s",
                    job.id, job.kind, job.attempts, delay, text)  # fmt: skip


def _give_up(session: Session, job: ClaimedJob, now: datetime, text: str) -> None:
    if job.kind != "send_message":
        return
    from server.db import MessageRow
    from server.services.messages import MessageStatus, _record_message

    message = session.get(MessageRow, str(job.data.get("message_id", "")))
    if message is not None and message.status == MessageStatus.QUEUED.value:
        message.status = MessageStatus.FAILED.value
        message.reason = f"GATEWAY_UNAVAILABLE: gave up after {job.attempts} attempts ({text})"
        _record_message(session, message, None)


Handler = Callable[["MessagingContext", ClaimedJob, datetime], str]


def run_job(ctx: MessagingContext, job: ClaimedJob, now: datetime) -> str:
    """Run one claimed job; failures are rescheduled (or given up), never raised."""
    handler = HANDLERS.get(job.kind)
    try:
        if handler is None:
            with transaction(ctx.sessions) as session:
                assert_owned(session, job)
                finish(session, job, now, f"failed: unknown job kind {job.kind!r}")
            return "unknown kind"
        return handler(ctx, job, now)
    except LeaseLost as exc:
        log.info("%s", exc)
        return "lease lost"
    except Exception as exc:  # one bad job must not stop the others
        if not _expected(exc):
            log.exception("job %s (%s) raised", job.id, job.kind)
        _retry_or_give_up(ctx, job, now, exc)
        return f"retry: {exc}"


def _expected(exc: Exception) -> bool:
    from server.messaging import GatewayUnavailable

    return isinstance(exc, GatewayUnavailable)


def _context(app_or_sessions: Any) -> MessagingContext:
    from server.services.messages import MessagingContext, context_of, standalone_context

    if isinstance(app_or_sessions, MessagingContext):
        return app_or_sessions
    if isinstance(app_or_sessions, sessionmaker):
        return standalone_context(app_or_sessions)
    return context_of(app_or_sessions)


def run_due_jobs(app_or_sessions: Any, now: datetime, owner: str) -> int:
    """Claim and run every job due at `now` (an app, a MessagingContext or a bare sessionmaker);
    the number of jobs this caller ran. Safe to call from many threads and processes at once."""
    ctx = _context(app_or_sessions)
    ran = 0
    for _ in range(_ROUNDS):
        jobs = claim_due(ctx.sessions, now, owner, ctx.settings.job_lease)
        if not jobs:
            break
        for job in jobs:
            run_job(ctx, job, now)
            ran += 1
    return ran


def run_now(ctx: MessagingContext, job_id: int, now: datetime, owner: str | None = None) -> bool:
    """Run one job at once if nobody else holds it (a message just queued by a request)."""
    job = claim(ctx.sessions, job_id, now, owner or new_owner(), ctx.settings.job_lease)
    if job is None:
        return False
    run_job(ctx, job, now)
    return True


# --- Job kinds --------------------------------------------------------------------------------


def _in_transaction(
    work: Callable[[MessagingContext, Session, ClaimedJob, datetime], tuple[str, int | None]],
) -> Handler:
    """A job whose effects and "done" mark commit together, under the job's row lock; a message
    it queues is delivered right after."""

    def handler(ctx: MessagingContext, job: ClaimedJob, now: datetime) -> str:
        with transaction(ctx.sessions) as session:
            _lead(session, job)  # lock order everywhere: lead row, then job row, then changes
            assert_owned(session, job)
            result, follow_up = work(ctx, session, job, now)
            finish(session, job, now, result)
        if follow_up is not None:
            run_now(ctx, follow_up, now, job.owner)
        return result

    return handler


def _lead(session: Session, job: ClaimedJob) -> Any:
    from server.db import LeadRow

    if job.lead_id is None:
        return None
    return session.scalar(select(LeadRow).where(LeadRow.id == job.lead_id).with_for_update())


def _slot(job: ClaimedJob) -> datetime:
    raw = job.data.get("appointment_at")
    if not isinstance(raw, str):
        raise ValueError(f"job {job.id}: data.appointment_at missing")
    slot = datetime.fromisoformat(raw)
    if slot.tzinfo is None:
        raise ValueError(f"job {job.id}: data.appointment_at must carry a time zone")
    return slot


def _message_id(job: ClaimedJob) -> str:
    """The same message id each time this job runs, so a rerun never queues a second copy."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bdc-job:{job.id}:{job.kind}"))


def _ack_email(
    ctx: MessagingContext, session: Session, job: ClaimedJob, now: datetime
) -> tuple[str, int | None]:
    from app.domain.leads import Channel
    from server.services.common import lead_of
    from server.services.messages import queue_automatic

    row = _lead(session, job)
    if row is None:
        return "skipped: the lead is gone", None
    if lead_of(row).primary_email is None:
        return "skipped: no valid email address", None
    return queue_automatic(
        ctx, session, row, template_id="ack_email", channel=Channel.EMAIL, now=now,
        message_id=_message_id(job),
    )  # fmt: skip


def _escalate(
    ctx: MessagingContext, session: Session, job: ClaimedJob, now: datetime
) -> tuple[str, int | None]:
    from server.services import routing

    row = _lead(session, job)
    if row is None:
        return "skipped: the lead is gone", None
    outcome = routing.escalate(session, row, now, ctx.settings)
    return f"{outcome.action}: {outcome.reason}", None


def _appointment_state(session: Session, job: ClaimedJob) -> tuple[Any, datetime, str | None]:
    from server.services.common import history_of
    from server.services.messages import appointment_outcome_known

    row = _lead(session, job)
    slot = _slot(job)
    if row is None:
        return None, slot, "the lead is gone"
    return row, slot, appointment_outcome_known(history_of(session, row.id), slot)


def _confirm_call(
    ctx: MessagingContext, session: Session, job: ClaimedJob, now: datetime
) -> tuple[str, int | None]:
    from server.changes import record
    from server.services.common import lead_of

    row, slot, settled = _appointment_state(session, job)
    if settled is not None:
        return f"skipped: {settled}", None
    if lead_of(row).opted_out_at is not None:
        return "skipped: the customer opted out", None
    record(
        session,
        store_id=row.store_id,
        entity="task",
        entity_id=f"job-{job.id}",
        agent_id=row.assigned_agent_id,
        data={
            "id": f"job-{job.id}",
            "kind": "appointment_confirm_call",
            "lead_id": row.id,
            "title": "Call to confirm the appointment",
            "appointment_at": slot.isoformat(),
            "due_at": now.isoformat(),
        },
    )
    return "task created for the agent", None


def _reminder_text(
    ctx: MessagingContext, session: Session, job: ClaimedJob, now: datetime
) -> tuple[str, int | None]:
    from app.domain.leads import Channel
    from server.services.messages import queue_automatic

    row, slot, settled = _appointment_state(session, job)
    if settled is not None:
        return f"skipped: {settled}", None
    if slot <= now:
        return "skipped: the appointment time has passed", None
    return queue_automatic(
        ctx, session, row, template_id="reminder_2h_text", channel=Channel.TEXT, now=now,
        message_id=_message_id(job), appointment_at=slot,
    )  # fmt: skip


def _no_show(
    ctx: MessagingContext, session: Session, job: ClaimedJob, now: datetime
) -> tuple[str, int | None]:
    from app.domain.activities import Activity, ActivityKind, AppointmentStatus
    from server.services.common import add_activity

    row, slot, settled = _appointment_state(session, job)
    if settled is not None:
        return f"skipped: {settled}", None
    late = int((now - slot).total_seconds() // 60)
    add_activity(
        session,
        row,
        Activity(
            id=_message_id(job),
            lead_id=row.id,
            kind=ActivityKind.APPOINTMENT,
            at=now,
            automatic=True,
            appointment_status=AppointmentStatus.NO_SHOW,
            scheduled_for=slot,
            body=f"No-show: the appointment was not marked kept {late} minutes after the slot",
        ),
    )
    return "marked no-show", None


def _send_message(ctx: MessagingContext, job: ClaimedJob, now: datetime) -> str:
    from server.services.messages import deliver

    return deliver(ctx, job, now)


def _call_watch(ctx: MessagingContext, job: ClaimedJob, now: datetime) -> str:
    from server.calls.service import watch_job

    return watch_job(ctx, job, now)


HANDLERS: dict[str, Handler] = {
    "ack_email": _in_transaction(_ack_email),
    "escalate": _in_transaction(_escalate),
    "appointment_confirm_call": _in_transaction(_confirm_call),
    "appointment_reminder_text": _in_transaction(_reminder_text),
    "no_show_check": _in_transaction(_no_show),
    "send_message": _send_message,
    "call_watch": _call_watch,
}


# --- The loop ---------------------------------------------------------------------------------


class Scheduler:
    """Runs due jobs every Settings.scheduler_interval in a worker thread, while the app runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.owner = new_owner()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="bdc-scheduler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        interval = self.app.state.settings.scheduler_interval.total_seconds()
        while not self._stopping.is_set():
            try:
                now = clock_of(self.app)
                await asyncio.to_thread(run_due_jobs, self.app, now, self.owner)
            except Exception:  # the database may be briefly away; try again next tick
                log.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)


def install(app: Any) -> None:
    """Start the scheduler with the app when Settings.run_scheduler says so."""
    settings: Settings = app.state.settings
    if not settings.run_scheduler:
        return
    scheduler = Scheduler(app)
    app.state.scheduler = scheduler

    async def start(_app: Any) -> None:
        await scheduler.start()

    async def stop(_app: Any) -> None:
        await scheduler.stop()

    app.state.on_start.append(start)
    app.state.on_stop.append(stop)
