"""The lead API's database: tables, engine and sessions. SQLite by default, PostgreSQL to scale out.

Leads and activities keep their full wire form in a JSON column (the domain codec reads it back)
beside the few columns queries filter on. The change log's `seq` is the sync cursor.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out — on SQLite (which drops the offset) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT autoincrement primary keys: SQLite only autoincrements INTEGER, so vary by dialect.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class StoreRow(Base):
    __tablename__ = "stores"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), default="default")
    name: Mapped[str] = mapped_column(String(120))
    time_zone: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str] = mapped_column(String(20), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    market_zips: Mapped[str] = mapped_column(String(400), default="")  # comma-separated


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # agent | manager | admin
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    phone: Mapped[str] = mapped_column(String(20), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TokenRow(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailureRow(Base):
    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LeadRow(Base):
    __tablename__ = "leads"
    __table_args__ = (
        # GET /v1/snapshot pages a store's leads by id, and counts an agent's visible ones.
        Index("ix_leads_store_id_id", "store_id", "id"),
        Index("ix_leads_store_id_assigned_agent_id", "store_id", "assigned_agent_id"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20))
    assigned_agent_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True, default=None)
    email: Mapped[str | None] = mapped_column(String(254), index=True, default=None)
    score: Mapped[int] = mapped_column(Integer, default=0)
    tier: Mapped[str] = mapped_column(String(10), default="low")
    grade: Mapped[str] = mapped_column(String(1), default="C")
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    first_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeadAssignmentRow(Base):
    """Who held a lead when: one row per holding, `until` None while it lasts (agent_id None:
    the unassigned pool). Written by common.save_lead whenever the assignee changes; read to
    accept activities an agent logged while the lead was theirs (e.g. offline, before a
    reassignment reached them)."""

    __tablename__ = "lead_assignments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    store_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    since: Mapped[datetime]
    until: Mapped[datetime | None] = mapped_column(default=None)


class RawPayloadRow(Base):
    """Every intake payload as received, for audit — kept even when rejected."""

    __tablename__ = "raw_payloads"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_type: Mapped[str] = mapped_column(String(100))
    principal: Mapped[str] = mapped_column(String(120))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    outcome: Mapped[str] = mapped_column(String(20))  # accepted | rejected
    detail: Mapped[str] = mapped_column(Text, default="")
    lead_ids: Mapped[str] = mapped_column(Text, default="")


class ActivityRow(Base):
    __tablename__ = "activities"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # client-generated UUID
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    data: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeRow(Base):
    """The change feed. `seq` grows in commit order (see changes.record), so a reader that has
    seen seq N has seen every change committed before it."""

    __tablename__ = "changes"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(20))  # lead | activity | presence | ...
    entity_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)  # owner, for filtering
    data: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRow(Base):
    __tablename__ = "idempotency"
    principal: Mapped[str] = mapped_column(String(120), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # in_flight | done
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageRow(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    direction: Mapped[str] = mapped_column(String(10))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    template_id: Mapped[str | None] = mapped_column(String(80), default=None)
    status: Mapped[str] = mapped_column(String(20))  # queued | sent | refused | failed | received
    reason: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class ContactBlockRow(Base):
    """Opt-outs and do-not-call entries by address, so they hold for every lead with that number."""

    __tablename__ = "contact_blocks"
    __table_args__ = (UniqueConstraint("store_id", "address", "kind"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(254), index=True)  # E.164 phone or email
    kind: Mapped[str] = mapped_column(String(12))  # opt_out | dnc
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(200), default="")


class JobRow(Base):
    """Scheduled work (acknowledgments, escalations, reminders, no-shows), run exactly once."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("dedupe_key"), Index("ix_jobs_due", "done_at", "due_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    store_id: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[str | None] = mapped_column(String(64), default=None)
    due_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[str] = mapped_column(Text, default="")


class PresenceRow(Base):
    __tablename__ = "presence"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(
        String(16)
    )  # available | on_call | wrap_up | paused | offline
    reason: Mapped[str] = mapped_column(String(80), default="")
    lead_id: Mapped[str | None] = mapped_column(String(64), default=None)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(default=utcnow)
    logged_in: Mapped[bool] = mapped_column(Boolean, default=True)
    last_assigned_at: Mapped[datetime | None] = mapped_column(default=None)


class CallRow(Base):
    """A server-bridged call (POST /v1/calls): agent phone first, then the customer."""

    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # client-generated UUID
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    provider_call_id: Mapped[str | None] = mapped_column(String(100), index=True, default=None)
    agent_phone: Mapped[str] = mapped_column(String(40))
    customer_phone: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12))  # dialing | ringing | answered | ended
    cause: Mapped[str] = mapped_column(String(20), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ringing_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[int | None] = mapped_column(Integer, default=None)
    recording: Mapped[str | None] = mapped_column(String(500), default=None)
    # Who picked up, when the provider detects it (Twilio AMD: human, machine_start, fax ...).
    answered_by: Mapped[str] = mapped_column(String(30), default="", server_default="")


SQLITE_BUSY_TIMEOUT_S = 30.0
# Engine execution option: this connection only reads (see read_only_engine).
READ_ONLY = "bdc_read_only"
_WRITER = "bdc_writer_lock"


def make_engine(url: str) -> Engine:
    """An engine for `url`. SQLite gets WAL, foreign keys and a busy timeout for several writers.

    SQLite allows one writer at a time and every transaction here takes the write lock at BEGIN
    (BEGIN IMMEDIATE: no lock upgrades, so no SQLITE_BUSY mid-transaction). Threads of this
    process queue for it on a lock of the engine's own (held from BEGIN until the connection
    goes back to the pool, i.e. after the COMMIT or ROLLBACK), so a waiting thread starts as soon
    as the writer before it finishes. Without it they waited in SQLite's busy handler, which
    sleeps and retries (up to 100 ms a nap) while the database may already be free: under eight
    concurrent intake requests the server sat idle a quarter of the time. The busy timeout still
    covers writers in other processes (the CLI, a second server). Read-only work can use
    `read_only_engine(engine)`: a deferred BEGIN, no write lock, a consistent WAL snapshot.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        writer = threading.Lock()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Durable against a crash of the application (a committed transaction is in the
            # WAL file); a power cut or OS crash may lose the last transactions before the
            # next checkpoint, never corrupt the database.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN")  # a snapshot; takes no lock until it writes
                return
            info = connection.info
            if info.get(_WRITER) is None:  # not yet held by this connection
                if not writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
                    raise sqlite3.OperationalError("database is locked (waited for a writer)")
                info[_WRITER] = writer
            # Take the write lock at BEGIN: no lock upgrades, so no SQLITE_BUSY mid-transaction.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        def _release(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
            held = record.info.pop(_WRITER, None) if record is not None else None
            if held is not None:
                held.release()

        # Back in the pool means committed or rolled back (the pool's reset runs first).
        event.listen(engine.pool, "checkin", _release)
        event.listen(engine.pool, "invalidate", _release)
        event.listen(engine.pool, "close", _release)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def read_only_engine(engine: Engine) -> Engine:
    """`engine` for work that never writes (sign-in checks, change-feed reads): on SQLite a
    deferred BEGIN that does not queue behind writers; on PostgreSQL the same engine."""
    return engine.execution_options(**{READ_ONLY: True})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("select 1"))
