"""Tables of the workstation's local database. Only app.store uses these rows: everything leaving
the store is a frozen domain object or a small frozen dataclass (see repository.py, outbox.py).

The schema itself is created and changed by the Alembic revisions in migrations/versions; these
models must match the newest revision (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out (SQLite keeps no offset); naive ones are refused."""

    impl = DateTime()
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the local database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class LeadRow(Base):
    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    assigned_agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # app.domain.codec.lead_to_dict
    score: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(40))
    grade: Mapped[str | None] = mapped_column(String(8))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set when the server took the lead out of this agent's queue (e.g. "reassigned"); the row
    # stays until the agent's own outbox items for it are done, so their activities still land.
    removed_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ActivityRow(Base):
    """Keyed by (lead_id, id), not by id: ids are random UUIDs, and a key index in random order
    cost a first download of 50,000 leads most of its storing time (each page's activities
    landed all over it). By lead, a page's activities land together at the end of the index,
    and it serves the reads of a lead's history too. An activity never changes leads."""

    __tablename__ = "activities"
    __table_args__ = (PrimaryKeyConstraint("lead_id", "id"),)

    # No foreign key: the server may send an activity before (or without) its lead.
    lead_id: Mapped[str] = mapped_column(String(64))
    id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # app.domain.codec.activity_to_dict
    pending: Mapped[bool] = mapped_column(Boolean, default=False)  # not yet confirmed


class ContactBlockRow(Base):
    """An opt-out or do-not-call entry: an E.164 phone or a lower-case e-mail address."""

    __tablename__ = "contact_blocks"

    address: Mapped[str] = mapped_column(String(254), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "opt_out" | "dnc"
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DatasetRow(Base):
    """When each cached dataset was last known to match the server."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    fresh_as_of: Mapped[datetime] = mapped_column(UtcDateTime)


class CachedDocumentRow(Base):
    """A cached dataset kept whole (templates, scripts, cadences, dispositions, calling rules,
    the ranked work items): JSON as the server or the rules files gave it."""

    __tablename__ = "cached_documents"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    content: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SyncStateRow(Base):
    """One row (id 1): where the pull stands and how the last sync went."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(64))
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    server_offset_s: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text)


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40))
    since: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConflictRow(Base):
    """A lead field the server refused (409): both values kept until the agent chooses."""

    __tablename__ = "conflicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(40))
    mine: Mapped[Any] = mapped_column(JSON)
    theirs: Mapped[Any] = mapped_column(JSON)
    server_version: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(String(10))  # "mine" | "theirs"


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        {"sqlite_autoincrement": True},
    )

    # AUTOINCREMENT: a seq is never reused, so the send order survives deletions.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    lead_id: Mapped[str | None] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    body: Mapped[Any] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10))  # pending | sending | failed | done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
