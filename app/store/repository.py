"""Reading and syncing the local database. Everything returned is frozen: domain Leads and
Activities decoded with app.domain.codec, or the small frozen dataclasses below — never ORM rows.

Writes here are the sync side (pulled changes, full dataset refreshes, cursor); agent actions go
through the outbox (outbox.py) so each is queued for the server in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import String, cast, delete, func, insert, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session

from app.domain.activities import Activity, in_order
from app.domain.codec import activity_from_dict, activity_to_dict, lead_from_dict, lead_to_dict
from app.domain.errors import DomainError
from app.domain.leads import Lead
from app.domain.phones import Phone, PhoneKind, TimeOfDay
from app.store.errors import StoreBugError
from app.store.models import (
    ActivityRow,
    AgentRow,
    CachedDocumentRow,
    ConflictRow,
    ContactBlockRow,
    DatasetRow,
    LeadRow,
    OutboxRow,
    SyncStateRow,
    utcnow,
)

if TYPE_CHECKING:
    from app.store.db import LocalStore

OPEN_OUTBOX_STATES = ("pending", "sending", "failed")


class BlockKind(StrEnum):
    OPT_OUT = "opt_out"
    DNC = "dnc"


class Dataset(StrEnum):
    """Cached datasets with a "fresh as of" time (any other name works too)."""

    LEADS = "leads"
    OPT_OUTS = "opt_outs"
    DNC = "dnc"
    RULES = "rules"
    TEMPLATES = "templates"
    SCRIPTS = "scripts"
    CADENCES = "cadences"
    DISPOSITIONS = "dispositions"
    CALLING_RULES = "calling_rules"
    WORK_ITEMS = "work_items"
    AGENTS = "agents"


_BLOCK_DATASET = {BlockKind.OPT_OUT: Dataset.OPT_OUTS, BlockKind.DNC: Dataset.DNC}


@dataclass(frozen=True, slots=True)
class StoredLead:
    """A lead with the server-computed queue columns."""

    lead: Lead
    score: int | None
    tier: str | None
    grade: str | None
    due_at: datetime | None
    removed_reason: str | None  # set while a lead taken from this agent waits on its outbox
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ContactBlock:
    address: str  # E.164 phone or lower-case e-mail
    kind: BlockKind
    at: datetime


@dataclass(frozen=True, slots=True)
class SyncState:
    cursor: str | None
    last_success_at: datetime | None
    server_offset_s: float  # server clock minus this PC's clock
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AgentInfo:
    id: str
    name: str
    role: str
    state: str
    reason: str | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A refused lead edit: `mine` and `theirs` are the field's wire values (read-only)."""

    id: int
    lead_id: str
    field: str
    mine: Any
    theirs: Any
    server_version: int
    changed_by: str
    created_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class CachedDocument:
    """A dataset kept whole (see Repository.save_document); `content` is read-only JSON."""

    name: str
    content: Any
    fresh_as_of: datetime | None


@dataclass(frozen=True, slots=True)
class AppliedChanges:
    """What a pull changed, for the UI to refresh and to show notices."""

    leads: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    # The leads those activities belong to (each once): as the changes said, no store lookup.
    activity_leads: tuple[str, ...] = ()
    removed: tuple[tuple[str, str], ...] = ()  # (lead_id, reason)
    blocks: tuple[str, ...] = ()  # addresses newly opted out or put on do-not-call
    ignored: int = 0  # changes of entities this version does not know
    more: bool = False  # more pages follow at once (a bulk download is under way)
    # The leads are whole as stored (a snapshot page: each with all its history), so they can
    # be derived now, while more pages follow; a change-feed page's leads may still be missing
    # activities a later page brings.
    whole: bool = False
    # The leads as stored by this change, already decoded (a first download's snapshot page):
    # the queue derives them without reading them back. Leads missing here are read as usual.
    read: Mapping[str, tuple[StoredLead, list[Activity]]] | None = field(
        default=None, compare=False, repr=False
    )


def freeze(value: Any) -> Any:
    """JSON data made read-only: objects become mapping proxies, arrays tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _parse_when(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ChangeFeedError(f"{field}: {value!r} is not an ISO 8601 date-time") from None
    else:
        raise ChangeFeedError(f"{field}: must be an ISO 8601 date-time string")
    if parsed.tzinfo is None:
        raise ChangeFeedError(f"{field}: must include a time zone offset")
    return parsed


class ChangeFeedError(StoreBugError):
    """A pulled change this program cannot read; nothing of the batch was applied."""


def _stored_phone(data: Any) -> Phone:
    return Phone(
        raw=data["raw"],
        e164=data["e164"],
        kind=PhoneKind(data["kind"]),
        preferred_time=TimeOfDay(data["preferred_time"]) if data["preferred_time"] else None,
        preferred=bool(data["preferred"]),
    )


def lead_of(row: LeadRow) -> Lead:
    """The stored lead. Its phones are taken as stored: this store wrote them from a decoded
    Lead, so their E.164 form is already this program's; re-parsing every number would double
    the start-up time of a 50,000-lead queue."""
    try:
        phones = tuple(_stored_phone(p) for p in row.data.get("phones") or ())
        lead = lead_from_dict({**row.data, "phones": []})
        return replace(lead, phones=phones) if phones else lead
    except (DomainError, KeyError, TypeError, ValueError) as error:
        raise StoreBugError(f"stored lead {row.id} cannot be read: {error}") from error


def activity_of(row: ActivityRow) -> Activity:
    return _activity(row.id, row.data)


def _activity(row_id: str, data: Any) -> Activity:
    try:
        return activity_from_dict(data)
    except DomainError as error:
        raise StoreBugError(f"stored activity {row_id} cannot be read: {error}") from error


# Ties in time keep the order the activities were stored in (reads agree with each other).
_ROWID = literal_column("activities.rowid")
_T = TypeVar("_T")


def stored_lead_of(row: LeadRow) -> StoredLead:
    return StoredLead(
        lead=lead_of(row),
        score=row.score,
        tier=row.tier,
        grade=row.grade,
        due_at=row.due_at,
        removed_reason=row.removed_reason,
        updated_at=row.updated_at,
    )


def _opt_out_times(session: Session) -> dict[str, datetime]:
    """Opted-out addresses (phones and e-mails) with the time of the block."""
    rows = session.execute(
        select(ContactBlockRow.address, ContactBlockRow.at).where(
            ContactBlockRow.kind == BlockKind.OPT_OUT.value
        )
    )
    return {row[0]: row[1] for row in rows}


def with_blocks(lead: Lead, opt_outs: Mapping[str, datetime]) -> Lead:
    """The lead as compliance must see it: opted out when any of its phones or e-mails is on the
    store's opt-out list (a STOP from that number, even one that reached another lead), since the
    block's time. Opt-out always wins; the stored row keeps the server's copy."""
    if lead.opted_out_at is not None or not opt_outs:
        return lead
    addresses = [p.e164 for p in lead.phones if p.e164]
    addresses += [e.address.lower() for e in lead.emails if e.address]
    times = [opt_outs[a] for a in addresses if a in opt_outs]
    return replace(lead, opted_out_at=min(times)) if times else lead


def _conflict_of(row: ConflictRow) -> Conflict:
    return Conflict(
        id=row.id,
        lead_id=row.lead_id,
        field=row.field,
        mine=freeze(row.mine),
        theirs=freeze(row.theirs),
        server_version=row.server_version,
        changed_by=row.changed_by,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


def _sync_row(session: Session) -> SyncStateRow:
    row = session.get(SyncStateRow, 1)
    if row is None:
        row = SyncStateRow(id=1, cursor=None, server_offset_s=0.0)
        session.add(row)
        session.flush()
    return row


def _set_freshness(session: Session, dataset: str, at: datetime) -> None:
    row = session.get(DatasetRow, dataset)
    if row is None:
        session.add(DatasetRow(name=dataset, fresh_as_of=at))
    else:
        row.fresh_as_of = at


def purge_if_settled(session: Session, lead_id: str) -> bool:
    """Delete a removed lead (and its local activities) once none of its outbox items is open."""
    row = session.get(LeadRow, lead_id)
    if row is None or row.removed_reason is None:
        return False
    open_items = session.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.lead_id == lead_id, OutboxRow.state.in_(OPEN_OUTBOX_STATES))
    )
    if open_items:
        return False
    session.execute(delete(ActivityRow).where(ActivityRow.lead_id == lead_id))
    session.delete(row)
    return True


class Repository:
    def __init__(self, store: LocalStore) -> None:
        self._store = store

    # Leads and history

    # Leads read here carry the store's opt-out list (see `with_blocks`).

    def get_lead(self, lead_id: str) -> Lead | None:
        with self._store.read("reading a lead") as session:
            row = session.get(LeadRow, lead_id)
            return None if row is None else with_blocks(lead_of(row), _opt_out_times(session))

    def stored_lead(self, lead_id: str) -> StoredLead | None:
        with self._store.read("reading a lead") as session:
            row = session.get(LeadRow, lead_id)
            if row is None:
                return None
            stored = stored_lead_of(row)
            return replace(stored, lead=with_blocks(stored.lead, _opt_out_times(session)))

    def leads_for_agent(self, agent_id: str) -> list[Lead]:
        """The agent's own leads and the unassigned pool (leads taken away are left out)."""
        with self._store.read("reading the queue") as session:
            opt_outs = _opt_out_times(session)
            rows = session.scalars(self._queue_query(agent_id).order_by(LeadRow.id))
            return [with_blocks(lead_of(row), opt_outs) for row in rows]

    def history(self, lead_id: str) -> list[Activity]:
        """The lead's activities, oldest first."""
        with self._store.read("reading a lead's history") as session:
            rows = session.execute(
                select(ActivityRow.id, ActivityRow.data)
                .where(ActivityRow.lead_id == lead_id)
                .order_by(ActivityRow.at, _ROWID)
            )
            return in_order(_activity(row_id, data) for row_id, data in rows)

    def leads_with_history(
        self, lead_ids: Iterable[str]
    ) -> dict[str, tuple[StoredLead, list[Activity]]]:
        """`stored_lead` and `history` of many leads at once (those stored; the others are
        missing from the answer): two queries per 500 leads instead of two per lead."""
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, tuple[StoredLead, list[Activity]]] = {}
        with self._store.read("reading leads") as session:
            opt_outs = _opt_out_times(session)
            # Core rows on the session's connection: the ORM's result machinery cost a fifth
            # of this read (a 50,000-lead first sync reads 530,000 activities here).
            connection = session.connection()
            for chunk in _chunks(ids):
                histories: dict[str, list[Activity]] = {}
                for row_id, lead_id, data in connection.execute(
                    select(ActivityRow.id, ActivityRow.lead_id, ActivityRow.data)
                    .where(ActivityRow.lead_id.in_(chunk))
                    .order_by(ActivityRow.at, _ROWID)
                ):
                    histories.setdefault(lead_id, []).append(_activity(row_id, data))
                lead_rows = connection.execute(
                    select(LeadRow.__table__).where(LeadRow.id.in_(chunk))
                )
                for row in lead_rows:
                    stored = stored_lead_of(row)  # type: ignore[arg-type]  # same attributes
                    stored = replace(stored, lead=with_blocks(stored.lead, opt_outs))
                    found[row.id] = (stored, in_order(histories.get(row.id, ())))
        return found

    def all_leads_with_history(
        self, agent_id: str | None = None
    ) -> list[tuple[Lead, list[Activity]]]:
        """Every lead in the queue with its history (the shape WorkQueue.load takes).

        With `agent_id`, only that agent's leads and the unassigned pool. Two queries, not one
        per lead: this runs at start-up over tens of thousands of leads.
        """
        with self._store.read("reading the queue") as session:
            lead_rows = list(session.scalars(self._queue_query(agent_id).order_by(LeadRow.id)))
            histories: dict[str, list[Activity]] = defaultdict(list)
            wanted = {row.id for row in lead_rows}
            for row_id, lead_id, data in session.execute(
                select(ActivityRow.id, ActivityRow.lead_id, ActivityRow.data).order_by(
                    ActivityRow.at, _ROWID
                )
            ):
                if lead_id in wanted:
                    histories[lead_id].append(_activity(row_id, data))
            opt_outs = _opt_out_times(session)
            return [
                (with_blocks(lead_of(row), opt_outs), in_order(histories.get(row.id, ())))
                for row in lead_rows
            ]

    def queue_lead_ids(self, agent_id: str | None = None) -> list[str]:
        """The ids of the leads `all_leads_with_history` gives, in its order."""
        with self._store.read("reading the queue") as session:
            query = self._queue_query(agent_id).with_only_columns(LeadRow.id)
            return list(session.scalars(query.order_by(LeadRow.id)))

    @staticmethod
    def _queue_query(agent_id: str | None) -> Any:
        query = select(LeadRow).where(LeadRow.removed_reason.is_(None))
        if agent_id is not None:
            query = query.where(
                or_(LeadRow.assigned_agent_id == agent_id, LeadRow.assigned_agent_id.is_(None))
            )
        return query

    def lead_count(self) -> int:
        with self._store.read("counting leads") as session:
            return int(session.scalar(select(func.count()).select_from(LeadRow)) or 0)

    # Opt-outs and do-not-call

    def blocked(self, kind: BlockKind) -> frozenset[str]:
        with self._store.read("reading the opt-out and do-not-call lists") as session:
            rows = session.scalars(
                select(ContactBlockRow.address).where(ContactBlockRow.kind == kind)
            )
            return frozenset(rows)

    def opt_outs(self) -> frozenset[str]:
        return self.blocked(BlockKind.OPT_OUT)

    def dnc(self) -> frozenset[str]:
        return self.blocked(BlockKind.DNC)

    def contact_blocks(self, kind: BlockKind | None = None) -> list[ContactBlock]:
        with self._store.read("reading the opt-out and do-not-call lists") as session:
            query = select(ContactBlockRow).order_by(ContactBlockRow.kind, ContactBlockRow.address)
            if kind is not None:
                query = query.where(ContactBlockRow.kind == kind)
            return [
                ContactBlock(row.address, BlockKind(row.kind), row.at)
                for row in session.scalars(query)
            ]

    def replace_contact_blocks(
        self, kind: BlockKind, entries: Iterable[tuple[str, datetime]], fresh_as_of: datetime
    ) -> None:
        """A full download of one list: replaces the local copy and marks it fresh, together."""
        with self._store.write("saving the opt-out and do-not-call list") as session:
            session.execute(delete(ContactBlockRow).where(ContactBlockRow.kind == kind))
            seen: set[str] = set()
            for address, at in entries:
                if address not in seen:
                    seen.add(address)
                    session.add(ContactBlockRow(address=address, kind=kind.value, at=at))
            _set_freshness(session, _BLOCK_DATASET[kind], fresh_as_of)

    def replace_all_contact_blocks(
        self, entries: Iterable[tuple[str, BlockKind, datetime]], fresh_as_of: datetime
    ) -> list[str]:
        """A full download of both lists (GET /v1/contact-blocks): replaces the local copy and
        marks both fresh, together. From then on each pull keeps them fresh. Returns the local
        leads with an address added to or lifted from a list (the queue re-reads them)."""
        with self._store.write("saving the opt-out and do-not-call lists") as session:
            before = set(session.execute(select(ContactBlockRow.address, ContactBlockRow.kind)))
            session.execute(delete(ContactBlockRow))
            seen: set[tuple[str, str]] = set()
            for address, kind, at in entries:
                key = (address, BlockKind(kind).value)
                if key not in seen:
                    seen.add(key)
                    session.add(ContactBlockRow(address=address, kind=key[1], at=at))
            for dataset in _BLOCK_DATASET.values():
                _set_freshness(session, dataset, fresh_as_of)
            changed = {address for address, _ in before.symmetric_difference(seen)}
            if not changed:
                return []
            return [
                row_id
                for row_id, data in session.execute(select(LeadRow.id, LeadRow.data))
                if changed.intersection(_addresses_in(data))
            ]

    # Freshness, cursor, sync state

    def freshness(self, dataset: str) -> datetime | None:
        """When `dataset` was last known to match the server (None: never downloaded)."""
        with self._store.read("reading data freshness") as session:
            row = session.get(DatasetRow, dataset)
            return None if row is None else row.fresh_as_of

    def set_freshness(self, dataset: str, at: datetime) -> None:
        with self._store.write("saving data freshness") as session:
            _set_freshness(session, dataset, at)

    def cursor(self) -> str | None:
        return self.sync_state().cursor

    def set_cursor(self, cursor: str | None) -> None:
        with self._store.write("saving the sync cursor") as session:
            _sync_row(session).cursor = cursor

    def sync_state(self) -> SyncState:
        with self._store.read("reading the sync state") as session:
            row = session.get(SyncStateRow, 1)
            if row is None:
                return SyncState(None, None, 0.0, None)
            return SyncState(row.cursor, row.last_success_at, row.server_offset_s, row.last_error)

    def record_sync_success(self, at: datetime, server_offset_s: float | None = None) -> None:
        with self._store.write("saving the sync state") as session:
            row = _sync_row(session)
            row.last_success_at = at
            row.last_error = None
            if server_offset_s is not None:
                row.server_offset_s = server_offset_s

    def record_sync_failure(self, error: str) -> None:
        with self._store.write("saving the sync state") as session:
            _sync_row(session).last_error = error

    # Whole datasets (templates, scripts, cadences, dispositions, calling rules, work items)

    def save_document(self, name: str, content: Any, fresh_as_of: datetime) -> None:
        """Replace the cached dataset `name` with `content` (JSON) and mark it fresh, together."""
        with self._store.write(f"saving the cached {name}") as session:
            row = session.get(CachedDocumentRow, name)
            if row is None:
                session.add(CachedDocumentRow(name=name, content=content, updated_at=utcnow()))
            else:
                row.content = content
                row.updated_at = utcnow()
            _set_freshness(session, name, fresh_as_of)

    def document(self, name: str) -> CachedDocument | None:
        with self._store.read(f"reading the cached {name}") as session:
            row = session.get(CachedDocumentRow, name)
            if row is None:
                return None
            fresh = session.get(DatasetRow, name)
            return CachedDocument(
                name, freeze(row.content), None if fresh is None else fresh.fresh_as_of
            )

    def document_content(self, name: str) -> Any:
        """The cached dataset's JSON as stored (not made read-only: for a caller that only
        reads it once, e.g. the queue's snapshot of 50,000 rows); None when there is none."""
        with self._store.read(f"reading the cached {name}") as session:
            return session.scalar(
                select(CachedDocumentRow.content).where(CachedDocumentRow.name == name)
            )

    # Agents (managers)

    def agents(self) -> list[AgentInfo]:
        with self._store.read("reading agents") as session:
            rows = session.scalars(select(AgentRow).order_by(AgentRow.name, AgentRow.id))
            return [AgentInfo(r.id, r.name, r.role, r.state, r.reason, r.since) for r in rows]

    def replace_agents(self, agents: Iterable[AgentInfo], fresh_as_of: datetime) -> None:
        with self._store.write("saving agents") as session:
            session.execute(delete(AgentRow))
            for agent in {a.id: a for a in agents}.values():
                session.add(
                    AgentRow(
                        id=agent.id,
                        name=agent.name,
                        role=agent.role,
                        state=agent.state,
                        reason=agent.reason,
                        since=agent.since,
                    )
                )
            _set_freshness(session, Dataset.AGENTS, fresh_as_of)

    # Conflicts

    def add_conflict(
        self,
        lead_id: str,
        field: str,
        *,
        mine: Any,
        theirs: Any,
        server_version: int,
        changed_by: str,
    ) -> Conflict:
        with self._store.write("saving an edit conflict") as session:
            if session.get(LeadRow, lead_id) is None:
                raise StoreBugError(f"conflict on lead {lead_id}, which is not in the local store")
            row = ConflictRow(
                lead_id=lead_id,
                field=field,
                mine=mine,
                theirs=theirs,
                server_version=server_version,
                changed_by=changed_by,
            )
            session.add(row)
            session.flush()
            return _conflict_of(row)

    def conflicts(self, lead_id: str | None = None) -> list[Conflict]:
        """Unresolved conflicts, oldest first."""
        with self._store.read("reading edit conflicts") as session:
            query = select(ConflictRow).where(ConflictRow.resolved_at.is_(None))
            if lead_id is not None:
                query = query.where(ConflictRow.lead_id == lead_id)
            return [_conflict_of(row) for row in session.scalars(query.order_by(ConflictRow.id))]

    def resolve_conflict(
        self, conflict_id: int, choice: str, *, at: datetime | None = None
    ) -> Conflict:
        """Record the agent's choice: "theirs" (the lead already holds it) or "mine" (the caller
        then re-sends the edit on the server's version with Outbox.record_lead_edit)."""
        if choice not in ("mine", "theirs"):
            raise ValueError(f"choice must be 'mine' or 'theirs', not {choice!r}")
        with self._store.write("resolving an edit conflict") as session:
            row = session.get(ConflictRow, conflict_id)
            if row is None:
                raise StoreBugError(f"no edit conflict {conflict_id}")
            if row.resolved_at is None:
                row.resolved_at = at or utcnow()
                row.resolution = choice
            return _conflict_of(row)

    # Pulled changes

    def apply_changes(
        self,
        changes: Sequence[Mapping[str, Any]],
        new_cursor: str | None,
        *,
        fresh_as_of: datetime | None = None,
    ) -> AppliedChanges:
        """Apply one page of `GET /v1/changes` and move the cursor, in ONE transaction.

        Each change is {"entity": ..., "data": {...}} as the server's change feed sends it.
        Entities this version does not know are skipped (a newer server may add some). A change
        it cannot read raises ChangeFeedError and applies nothing, the cursor included.
        `new_cursor` None: changes learnt outside the feed (an answer to a claim), the cursor
        stays where it is (unset on a PC whose first download has not finished).
        """
        applied = _Applied()
        with self._store.write("saving changes from the server") as session:
            applied.prefetch(session, changes)
            for position, change in enumerate(changes):
                if not isinstance(change, Mapping):
                    raise ChangeFeedError(f"change #{position}: must be an object")
                entity = change.get("entity")
                data = change.get("data")
                handler = _HANDLERS.get(entity) if isinstance(entity, str) else None
                if handler is None:
                    applied.ignored += 1
                    continue
                if not isinstance(data, Mapping):
                    raise ChangeFeedError(f"change #{position} ({entity}): data must be an object")
                try:
                    handler(session, data, applied)
                except DomainError as error:
                    seq = change.get("seq", f"#{position}")
                    raise ChangeFeedError(
                        f"change {seq} ({entity}) cannot be read: {error}"
                    ) from error
            applied.insert_new(session)
            if new_cursor is not None:
                _sync_row(session).cursor = new_cursor
            if fresh_as_of is not None:
                _set_freshness(session, Dataset.LEADS, fresh_as_of)
                # The change feed carries every block added or lifted: once the lists were
                # downloaded whole, each pull keeps them fresh.
                for dataset in _BLOCK_DATASET.values():
                    if session.get(DatasetRow, dataset) is not None:
                        _set_freshness(session, dataset, fresh_as_of)
        return applied.result()

    def apply_snapshot_page(
        self, entries: Sequence[Mapping[str, Any]], *, with_reads: bool = False
    ) -> AppliedChanges:
        """One page of `GET /v1/snapshot` (a first download, or a full resync), in ONE
        transaction: each entry is a "lead" change payload with the lead's whole history in
        "activities". Older copies than the stored ones are ignored as in the change feed; the
        cursor does not move (`finish_snapshot` moves it after the last page). An entry it
        cannot read raises ChangeFeedError naming it, and nothing of the page is stored.

        `with_reads`: the answer also holds the stored leads as `stored_lead` and `history`
        would read them (`AppliedChanges.read`), from the page's decoded copies, so the queue
        need not read them back (a third of a 50,000-lead first download's time)."""
        applied = _Applied()
        decoded: dict[str, tuple[Lead, dict[str, Any]]] = {}
        histories: dict[str, list[Activity]] = {}
        with self._store.write("saving your leads from the server") as session:
            applied.prefetch(session, _snapshot_changes(entries))
            for position, entry in enumerate(entries):
                if not isinstance(entry, Mapping):
                    raise ChangeFeedError(f"lead #{position}: must be an object")
                try:
                    lead, values = _store_lead(session, entry, applied)
                    if values is not None:
                        decoded[lead.id] = (lead, values)
                    history = histories.setdefault(lead.id, [])
                    # (an older server's lead list, the resync fallback, has no histories)
                    activities = entry.get("activities") or []
                    if not isinstance(activities, list):
                        raise ChangeFeedError("activities: must be a list")
                    for data in activities:
                        if not isinstance(data, Mapping):
                            raise ChangeFeedError("activities: each must be an object")
                        if data.get("lead_id") != lead.id:
                            raise ChangeFeedError(
                                f"activity {data.get('id')!r} belongs to lead "
                                f"{data.get('lead_id')!r}, not to this one"
                            )
                        history.append(_store_activity(session, data, applied))
                except (DomainError, ChangeFeedError) as error:
                    raise ChangeFeedError(
                        f"lead #{position} ({_entry_id(entry)}) cannot be read: {error}"
                    ) from error
            applied.insert_new(session)
            read = _page_reads(session, decoded, histories) if with_reads else None
        return replace(applied.result(), read=read)

    def finish_snapshot(
        self,
        present: Collection[str],
        new_cursor: str,
        *,
        fresh_as_of: datetime | None = None,
        reason: str = "no longer in your queue",
    ) -> AppliedChanges:
        """After a snapshot's last page: local leads it did not name (`present`) leave the queue
        like "lead_removed" ones (their pending work still lands), and the cursor moves to where
        the snapshot began, together."""
        applied = _Applied()
        with self._store.write("finishing the download of your leads") as session:
            for lead_id in session.scalars(
                select(LeadRow.id).where(LeadRow.removed_reason.is_(None))
            ).all():
                if lead_id not in present:
                    _remove_lead(session, lead_id, reason, applied)
            _sync_row(session).cursor = new_cursor
            if fresh_as_of is not None:
                _set_freshness(session, Dataset.LEADS, fresh_as_of)
        return applied.result()


def _snapshot_changes(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """A snapshot page as the change entries `_Applied.prefetch` looks up."""
    changes: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        changes.append({"entity": "lead", "data": entry})
        activities = entry.get("activities")
        if isinstance(activities, list):
            changes += [{"entity": "activity", "data": data} for data in activities]
    return changes


def _entry_id(entry: Mapping[str, Any]) -> str:
    lead = entry.get("lead")
    return str(lead.get("id")) if isinstance(lead, Mapping) else "no id"


def _page_reads(
    session: Session,
    decoded: Mapping[str, tuple[Lead, dict[str, Any]]],
    histories: Mapping[str, list[Activity]],
) -> dict[str, tuple[StoredLead, list[Activity]]]:
    """What `leads_with_history` would read of a snapshot page's stored leads, built from the
    page's decoded copies plus the activities this store holds that the page did not bring:
    this PC's own, not yet confirmed (the server's history is append-only, so every confirmed
    one is in the page). Only those are read back: they are few."""
    connection = session.connection()
    opt_outs = _opt_out_times(session)
    brought = {a.id for history in histories.values() for a in history}
    mine: dict[str, list[Activity]] = {}
    for chunk in _chunks(list(decoded)):
        for row_id, lead_id, data in connection.execute(
            select(ActivityRow.id, ActivityRow.lead_id, ActivityRow.data)
            .where(ActivityRow.lead_id.in_(chunk), ActivityRow.pending.is_(True))
            .order_by(ActivityRow.at, _ROWID)
        ):
            if row_id not in brought:
                mine.setdefault(lead_id, []).append(_activity(row_id, data))
    reads: dict[str, tuple[StoredLead, list[Activity]]] = {}
    for lead_id, (lead, values) in decoded.items():
        stored = StoredLead(
            lead=with_blocks(lead, opt_outs),
            score=values["score"],
            tier=values["tier"],
            grade=values["grade"],
            due_at=None if values["due_at"] is None else values["due_at"].astimezone(UTC),
            removed_reason=None,
            updated_at=values["updated_at"],
        )
        # stored earlier first, as a read in (time, storage order) has them on a tie
        own = mine.get(lead_id, [])
        reads[lead_id] = (stored, in_order([*own, *histories.get(lead_id, ())]))
    return reads


class _Applied:
    """What a batch changed, and the rows it touches (looked up once, not per change)."""

    def __init__(self) -> None:
        self.lead_rows: dict[str, LeadRow | None] = {}
        # Both by (lead_id, id), the table's key.
        self.activity_rows: dict[tuple[str, str], ActivityRow | None] = {}
        self.new_activities: dict[tuple[str, str], dict[str, Any]] = {}  # see insert_new
        self.leads: list[str] = []
        self.activities: list[str] = []
        self.activity_leads: list[str] = []
        self.removed: list[tuple[str, str]] = []
        self.blocks: list[str] = []
        self.ignored = 0

    def prefetch(self, session: Session, changes: Sequence[Any]) -> None:
        lead_ids: set[str] = set()
        activity_keys: set[tuple[str, str]] = set()
        for change in changes:
            data = change.get("data") if isinstance(change, Mapping) else None
            if not isinstance(data, Mapping):
                continue
            entity = change.get("entity")
            lead = data.get("lead")
            if entity == "lead" and isinstance(lead, Mapping) and isinstance(lead.get("id"), str):
                lead_ids.add(lead["id"])
            elif entity in ("lead_removed", "pool_left") and isinstance(data.get("lead_id"), str):
                lead_ids.add(data["lead_id"])
            elif (
                entity == "activity"
                and isinstance(data.get("id"), str)
                and isinstance(data.get("lead_id"), str)
            ):
                activity_keys.add((data["lead_id"], data["id"]))
        for chunk in _chunks(sorted(lead_ids)):
            self.lead_rows.update(dict.fromkeys(chunk))
            for row in session.scalars(select(LeadRow).where(LeadRow.id.in_(chunk))):
                self.lead_rows[row.id] = row
        for keys in _chunks(sorted(activity_keys)):
            self.activity_rows.update(dict.fromkeys(keys))
            # Row values: `lead_id IN … AND id IN …` probes every lead with every id (40x
            # slower for a feed page of new activities on stored leads)
            query = select(ActivityRow).where(tuple_(ActivityRow.lead_id, ActivityRow.id).in_(keys))
            for activity in session.scalars(query):
                self.activity_rows[(activity.lead_id, activity.id)] = activity

    def lead_row(self, session: Session, lead_id: str) -> LeadRow | None:
        if lead_id not in self.lead_rows:
            self.lead_rows[lead_id] = session.get(LeadRow, lead_id)
        return self.lead_rows[lead_id]

    def activity_row(self, session: Session, lead_id: str, activity_id: str) -> ActivityRow | None:
        key = (lead_id, activity_id)
        if key not in self.activity_rows:
            self.activity_rows[key] = session.get(ActivityRow, key)
        return self.activity_rows[key]

    def forget_lead(self, lead_id: str) -> None:
        """The lead and its activities were deleted: later changes must not reuse their rows."""
        self.lead_rows[lead_id] = None
        for key, row in list(self.activity_rows.items()):
            if row is not None and row.lead_id == lead_id:
                self.activity_rows[key] = None
        for key in list(self.new_activities):
            if key[0] == lead_id:
                del self.new_activities[key]

    def insert_new(self, session: Session) -> None:
        """Store the batch's new activities (one executemany)."""
        if self.new_activities:
            # Core's executemany: the ORM's bulk path costs as much again per row.
            session.connection().execute(
                insert(ActivityRow.__table__), list(self.new_activities.values())
            )
            self.new_activities.clear()

    def result(self) -> AppliedChanges:
        return AppliedChanges(
            tuple(dict.fromkeys(self.leads)),
            tuple(dict.fromkeys(self.activities)),
            tuple(dict.fromkeys(self.activity_leads)),
            tuple(self.removed),
            tuple(dict.fromkeys(self.blocks)),
            self.ignored,
        )


def _chunks(ids: list[_T], size: int = 500) -> Iterator[list[_T]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _int_or_none(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChangeFeedError(f"{key}: must be an integer")
    return value


def _text_or_none(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ChangeFeedError(f"{key}: must be a string")
    return value


def _apply_lead(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    _store_lead(session, data, applied)


def _store_lead(
    session: Session, data: Mapping[str, Any], applied: _Applied
) -> tuple[Lead, dict[str, Any] | None]:
    """Store a "lead" change payload: the decoded lead, and the row's values (None when an
    older copy than the stored one was ignored)."""
    lead = lead_from_dict(data.get("lead"))
    version = _int_or_none(data, "version")
    version = lead.version if version is None else version
    row = applied.lead_row(session, lead.id)
    if row is not None and row.version > version:
        return lead, None  # an older copy arriving late; the newer one is already here
    values: dict[str, Any] = {
        "version": version,
        "assigned_agent_id": lead.assigned_agent_id,
        "data": lead_to_dict(lead),
        "score": _int_or_none(data, "score"),
        "tier": _text_or_none(data, "tier"),
        "grade": _text_or_none(data, "grade"),
        "due_at": _parse_when(data.get("due_at"), "due_at"),
        "removed_reason": None,
        "updated_at": utcnow(),
    }
    if row is None:
        row = LeadRow(id=lead.id, **values)
        session.add(row)
        applied.lead_rows[lead.id] = row
    else:
        for key, value in values.items():
            setattr(row, key, value)
    applied.leads.append(lead.id)
    return lead, values


def _apply_activity(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    _store_activity(session, data, applied)


def _store_activity(session: Session, data: Mapping[str, Any], applied: _Applied) -> Activity:
    """Store an "activity" change payload; returns it decoded."""
    activity = activity_from_dict(data)
    key = (activity.lead_id, activity.id)
    new = applied.new_activities.get(key)
    if new is not None:  # twice in one batch: the later copy wins
        new.update(at=activity.at, data=activity_to_dict(activity))
        applied.activities.append(activity.id)
        applied.activity_leads.append(activity.lead_id)
        return activity
    row = applied.activity_row(session, activity.lead_id, activity.id)
    if row is None:
        # Inserted together at the end of the batch (one executemany, not an ORM object each).
        applied.new_activities[key] = {
            "id": activity.id,
            "lead_id": activity.lead_id,
            "at": activity.at,
            # As the server sent it (its codec's own output, read back the same): encoding
            # the decoded copy again costs as much as the decoding.
            "data": dict(data),
            "pending": False,
        }
    else:
        # The server's copy confirms (and is the truth for) one this PC recorded.
        row.data = activity_to_dict(activity)
        row.at = activity.at
        row.pending = False
    applied.activities.append(activity.id)
    applied.activity_leads.append(activity.lead_id)
    return activity


def _remove_lead(session: Session, lead_id: str, reason: str, applied: _Applied) -> None:
    row = applied.lead_row(session, lead_id)
    if row is None:
        return
    row.removed_reason = reason or "removed"
    session.flush()
    if purge_if_settled(session, lead_id):
        applied.forget_lead(lead_id)
    applied.removed.append((lead_id, row.removed_reason))


def _apply_pool_left(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    """Somebody took a pool lead (a claim, or routing). The one who got it, and managers, hold
    the newer copy already (its "lead" change comes first); every other PC drops it from the
    pool. Silently, unless the agent did something on it from this PC (an outbox item, sent or
    not): then they are told (a notice), and work still waiting is sent all the same."""
    lead_id = _text_or_none(data, "lead_id")
    if not lead_id:
        raise ChangeFeedError("pool_left: lead_id is required")
    agent_id = _text_or_none(data, "agent_id")
    version = _int_or_none(data, "version")
    row = applied.lead_row(session, lead_id)
    if row is None or row.removed_reason is not None or row.assigned_agent_id == agent_id:
        return
    if version is not None and row.version > version:
        return  # a newer copy (e.g. given back to the pool since) is here already
    reason = _text_or_none(data, "reason") or "taken from the pool"
    worked_on = session.scalar(select(OutboxRow.seq).where(OutboxRow.lead_id == lead_id).limit(1))
    if worked_on is not None:
        _remove_lead(session, lead_id, reason, applied)  # pending work still lands
        return
    row.removed_reason = reason
    session.flush()
    if purge_if_settled(session, lead_id):
        applied.forget_lead(lead_id)
    applied.leads.append(lead_id)  # the queue re-reads it and finds it gone


def _apply_lead_removed(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    lead_id = _text_or_none(data, "lead_id")
    if not lead_id:
        raise ChangeFeedError("lead_removed: lead_id is required")
    version = _int_or_none(data, "version")
    row = applied.lead_row(session, lead_id)
    if row is not None and version is not None and row.version > version:
        # A newer copy is here already (given back since, or a snapshot page read after the
        # removal the feed now replays): removing it would purge its history.
        return
    _remove_lead(session, lead_id, _text_or_none(data, "reason") or "removed", applied)


def _addresses_in(data: Any) -> set[str]:
    """The E.164 phones and lower-case e-mails of a stored lead's JSON (not decoded)."""
    found: set[str] = set()
    for phone in data.get("phones") or ():
        if isinstance(phone, Mapping) and isinstance(phone.get("e164"), str):
            found.add(phone["e164"])
    for email in data.get("emails") or ():
        address = email.get("address") if isinstance(email, Mapping) else email
        if isinstance(address, str):
            found.add(address.lower())
    return found


def _lead_ids_with_address(session: Session, address: str) -> list[str]:
    """Local leads with `address` among their phones or e-mails."""
    rows = session.scalars(
        select(LeadRow).where(cast(LeadRow.data, String).like(f'%"{address}"%'))
    ).all()
    return [row.id for row in rows if address in _addresses_in(row.data)]


def _block_applier(kind: BlockKind) -> Any:
    def apply(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
        address = _text_or_none(data, "address")
        if not address:
            raise ChangeFeedError(f"{kind.value}: address is required")
        at = _parse_when(data.get("at"), "at") or utcnow()
        row = session.get(ContactBlockRow, (address, kind.value))
        if data.get("removed") is True:
            # e.g. the customer texted START: the server lifted the opt-out.
            if row is not None:
                session.delete(row)
                session.flush()
                applied.leads.extend(_lead_ids_with_address(session, address))
            return
        if row is None:
            session.add(ContactBlockRow(address=address, kind=kind.value, at=at))
            applied.blocks.append(address)
            session.flush()
            # The leads with this address read differently now (see with_blocks): refresh them.
            applied.leads.extend(_lead_ids_with_address(session, address))

    return apply


_BLOCK_APPLIERS = {kind.value: _block_applier(kind) for kind in BlockKind}


def _apply_contact_block(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    kind = _text_or_none(data, "kind")
    applier = _BLOCK_APPLIERS.get(kind or "")
    if applier is None:
        applied.ignored += 1  # a kind of block this version does not know
        return
    applier(session, data, applied)


def _apply_presence(session: Session, data: Mapping[str, Any], applied: _Applied) -> None:
    user_id = _text_or_none(data, "user_id")
    state = _text_or_none(data, "state")
    if not user_id or not state:
        raise ChangeFeedError("presence: user_id and state are required")
    row = session.get(AgentRow, user_id)
    if row is None:
        return  # not an agent this PC lists (an agent's own PC keeps no floor)
    row.state = state
    row.reason = _text_or_none(data, "reason")
    row.since = _parse_when(data.get("since"), "since")


_HANDLERS = {
    "lead": _apply_lead,
    "activity": _apply_activity,
    "lead_removed": _apply_lead_removed,
    "pool_left": _apply_pool_left,
    "opt_out": _block_applier(BlockKind.OPT_OUT),
    "dnc": _block_applier(BlockKind.DNC),
    "contact_block": _apply_contact_block,
    "presence": _apply_presence,
}
