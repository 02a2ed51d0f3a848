"""The outbox: every agent action, written with its local effect in ONE transaction, then sent.

record_* returns only after the commit, so once the UI says "done" the action survives a killed
process or a dead network. The sender (app.sync) drains items in seq order with their
Idempotency-Key: next_due -> mark_sending -> mark_done / mark_retry / mark_failed. An item the
server refused (4xx) is kept as "failed" for the agent to see; it never blocks other items.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from app.domain.activities import Activity
from app.domain.codec import DecodeError, activity_to_dict, lead_from_dict, lead_to_dict
from app.domain.errors import DomainError
from app.domain.leads import Channel, Lead
from app.store.errors import StoreBugError
from app.store.models import ActivityRow, ConflictRow, LeadRow, OutboxRow, utcnow
from app.store.repository import (
    OPEN_OUTBOX_STATES,
    ChangeFeedError,
    Conflict,
    _Applied,
    _apply_lead,
    _conflict_of,
    purge_if_settled,
)

if TYPE_CHECKING:
    from app.store.db import LocalStore


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    FAILED = "failed"  # refused by the server (4xx): kept and shown, never dropped
    DONE = "done"


class OutboxKind(StrEnum):
    ACTIVITY = "activity"
    MESSAGE = "message"
    LEAD_EDIT = "lead_edit"
    PRESENCE = "presence"


# Lead fields an agent may edit (the server's PATCH /v1/leads/{id} takes these).
EDITABLE_FIELDS = (
    "person",
    "phones",
    "emails",
    "address",
    "vehicles",
    "trade_in",
    "timeframe",
    "comments",
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    id: str
    kind: OutboxKind
    lead_id: str | None
    idempotency_key: str
    method: str
    path: str
    body_json: str  # the exact bytes to send, identical on every retry
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    failed_status: int | None
    created_at: datetime

    @property
    def body(self) -> Any:
        """A fresh copy of the JSON body."""
        return json.loads(self.body_json)


def _item_of(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        seq=row.seq,
        id=row.id,
        kind=OutboxKind(row.kind),
        lead_id=row.lead_id,
        idempotency_key=row.idempotency_key,
        method=row.method,
        path=row.path,
        body_json=json.dumps(row.body, separators=(",", ":"), sort_keys=True),
        state=OutboxState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        failed_status=row.failed_status,
        created_at=row.created_at,
    )


def _edit_to_codec(field: str, value: Any) -> Any:
    """A PATCH field value in the codec's wire shape, to apply the edit to the local copy."""
    if field == "phones" and isinstance(value, list):
        phones = []
        for n, phone in enumerate(value):
            if not isinstance(phone, Mapping):
                raise DecodeError(f"phones[{n}]: must be an object")
            converted = {k: v for k, v in phone.items() if k != "number"}
            converted["raw"] = phone.get("number", phone.get("raw"))
            phones.append(converted)
        return phones
    if field == "trade_in" and isinstance(value, Mapping):
        return {**value, "interest": "trade-in"}
    return value


def _same_value(server_lead: Mapping[str, Any], field: str, value: Any) -> bool:
    """Does the edit's value of `field` equal the server lead's, once both are normalized?"""
    try:
        theirs = lead_to_dict(lead_from_dict(dict(server_lead)))
        mine = lead_to_dict(lead_from_dict({**server_lead, field: _edit_to_codec(field, value)}))
    except DomainError:
        return False
    return bool(mine.get(field) == theirs.get(field))


class Outbox:
    def __init__(self, store: LocalStore) -> None:
        self._store = store

    # Recording actions

    def _enqueue(
        self,
        session: Session,
        *,
        kind: OutboxKind,
        lead_id: str | None,
        method: str,
        path: str,
        body: Any,
        idempotency_key: str,
        now: datetime,
        not_before: datetime | None = None,
    ) -> OutboxRow:
        row = OutboxRow(
            id=str(uuid.uuid4()),
            kind=kind.value,
            lead_id=lead_id,
            idempotency_key=idempotency_key,
            method=method,
            path=path,
            body=body,
            state=OutboxState.PENDING.value,
            attempts=0,
            next_attempt_at=max(now, not_before) if not_before is not None else now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row

    def record_activity(self, activity: Activity, *, lead_update: Lead | None = None) -> OutboxItem:
        """Save the activity (pending until the server confirms it), optionally the lead's new
        local state, and queue POST /v1/activities — all or nothing."""
        return self.record_activities([activity], lead_update=lead_update)[0]

    def record_activities(
        self,
        activities: list[Activity],
        *,
        lead_update: Lead | None = None,
        not_before: datetime | None = None,
    ) -> list[OutboxItem]:
        """Several activities of one action (a call and its disposition) with the lead's new
        local state: one transaction, one outbox item per activity, in order.

        `not_before` holds the items back until then (the agent may still undo them: see
        `withdraw`); they are durable at once all the same."""
        if not activities:
            raise ValueError("record_activities needs at least one activity")
        now = utcnow()
        items: list[OutboxItem] = []
        with self._store.write("saving the activity") as session:
            for activity in activities:
                data = activity_to_dict(activity)
                session.add(
                    ActivityRow(
                        id=activity.id,
                        lead_id=activity.lead_id,
                        at=activity.at,
                        data=data,
                        pending=True,
                    )
                )
                session.flush()
                row = self._enqueue(
                    session,
                    kind=OutboxKind.ACTIVITY,
                    lead_id=activity.lead_id,
                    method="POST",
                    path="/v1/activities",
                    body=data,
                    idempotency_key=activity.id,
                    now=now,
                    not_before=not_before,
                )
                items.append(_item_of(row))
            if lead_update is not None:
                self._update_lead(session, lead_update)
            return items

    @staticmethod
    def _update_lead(session: Session, lead: Lead) -> None:
        row = session.get(LeadRow, lead.id)
        if row is None:
            raise StoreBugError(f"lead {lead.id} is not in the local store; cannot update it")
        # The server's version stays: it is the base of the agent's next edit.
        row.data = lead_to_dict(lead)
        row.assigned_agent_id = lead.assigned_agent_id
        row.updated_at = utcnow()
        session.flush()

    def record_message(
        self,
        *,
        lead_id: str,
        channel: Channel,
        body: str,
        subject: str | None = None,
        template_id: str | None = None,
        message_id: str | None = None,
        local_activity: Activity | None = None,
    ) -> OutboxItem:
        """Queue a text or e-mail (POST /v1/messages); until sent the UI shows it as "will send
        when online". The server re-checks consent and quiet hours when it sends."""
        if channel is Channel.CALL:
            raise ValueError("record_message takes a text or email channel, not call")
        if not body.strip():
            raise ValueError("a message needs a body")
        message_id = message_id or str(uuid.uuid4())
        payload: dict[str, Any] = {
            "id": message_id,
            "lead_id": lead_id,
            "channel": channel.value,
            "body": body,
        }
        if subject is not None:
            payload["subject"] = subject
        if template_id is not None:
            payload["template_id"] = template_id
        if local_activity is not None and local_activity.id != message_id:
            raise ValueError("the message's local activity must carry the message id")
        with self._store.write("saving the message") as session:
            if local_activity is not None:
                # Shown in the lead's history at once (pending); the server records the sent
                # text under the same id, which then confirms this row.
                session.add(
                    ActivityRow(
                        id=local_activity.id,
                        lead_id=lead_id,
                        at=local_activity.at,
                        data=activity_to_dict(local_activity),
                        pending=True,
                    )
                )
                session.flush()
            row = self._enqueue(
                session,
                kind=OutboxKind.MESSAGE,
                lead_id=lead_id,
                method="POST",
                path="/v1/messages",
                body=payload,
                idempotency_key=message_id,
                now=utcnow(),
            )
            return _item_of(row)

    def record_lead_edit(
        self, lead_id: str, base_version: int, fields: Mapping[str, Any]
    ) -> OutboxItem:
        """Apply an edit to the local copy and queue PATCH /v1/leads/{id} on `base_version`.

        `fields` are the PATCH body's fields (phones as {"number", "kind", ...}). A field that
        cannot be edited or a bad value raises DecodeError naming it, and nothing is saved.
        """
        unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
        if unknown:
            raise DecodeError(f"not editable: {', '.join(unknown)}")
        if not fields:
            raise DecodeError("an edit needs at least one field")
        with self._store.write("saving the lead edit") as session:
            row = session.get(LeadRow, lead_id)
            if row is None:
                raise StoreBugError(f"lead {lead_id} is not in the local store; cannot edit it")
            merged = dict(row.data)
            for field, value in fields.items():
                merged[field] = _edit_to_codec(field, value)
            edited = lead_from_dict(merged)  # DecodeError names a bad field: nothing written
            self._update_lead(session, edited)
            item = self._enqueue(
                session,
                kind=OutboxKind.LEAD_EDIT,
                lead_id=lead_id,
                method="PATCH",
                path=f"/v1/leads/{lead_id}",
                body={"base_version": base_version, **fields},
                idempotency_key=str(uuid.uuid4()),
                now=utcnow(),
            )
            return _item_of(item)

    def record_presence(
        self, state: str, reason: str | None = None, *, lead_id: str | None = None
    ) -> OutboxItem:
        """Queue a presence change (POST /v1/presence): available, on_call, wrap_up, paused."""
        with self._store.write("saving the presence change") as session:
            row = self._enqueue(
                session,
                kind=OutboxKind.PRESENCE,
                lead_id=None,
                method="POST",
                path="/v1/presence",
                body={"state": state, "reason": reason, "lead_id": lead_id},
                idempotency_key=str(uuid.uuid4()),
                now=utcnow(),
            )
            return _item_of(row)

    def withdraw(self, item_ids: list[str], *, lead_before: Lead | None = None) -> bool:
        """Undo: take back activity items the server has not seen, with their pending history
        rows, and put the lead back as it was (`lead_before`) — all or nothing, in ONE
        transaction. False (and nothing changed) once any of them was sent or tried."""
        if not item_ids:
            return False
        with self._store.write("withdrawing an action") as session:
            rows = session.scalars(select(OutboxRow).where(OutboxRow.id.in_(item_ids))).all()
            if len(rows) != len(set(item_ids)) or any(
                row.state != OutboxState.PENDING.value
                or row.attempts
                or row.kind != OutboxKind.ACTIVITY.value
                for row in rows
            ):
                return False
            keys = [(row.lead_id, row.idempotency_key) for row in rows]
            session.execute(
                delete(ActivityRow).where(
                    tuple_(ActivityRow.lead_id, ActivityRow.id).in_(keys),
                    ActivityRow.pending.is_(True),
                )
            )
            for row in rows:
                session.delete(row)
            if lead_before is not None:
                self._update_lead(session, lead_before)
            session.flush()
            return True

    # Sender side

    def recover(self) -> int:
        """After a crash: items caught mid-send go back to pending (the Idempotency-Key makes
        the resend safe). Returns how many."""
        with self._store.write("recovering the outbox") as session:
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.state == OutboxState.SENDING.value)
            ).all()
            for row in rows:
                row.state = OutboxState.PENDING.value
            return len(rows)

    def next_due(self, now: datetime) -> OutboxItem | None:
        """The oldest item ready to send, keeping each lead's items in order: an item waits
        while an earlier one for the same lead is pending or sending. Failed items block
        nothing. Items without a lead (presence) are in order among themselves."""
        with self._store.read("reading the outbox") as session:
            # Only the columns the choice needs, then the one chosen row: building ORM objects
            # for every held item (an undo window holds each disposition 8 s) cost ~11 ms at 80,
            # inside the agent's keystroke.
            rows = session.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.lead_id,
                    OutboxRow.kind,
                    OutboxRow.state,
                    OutboxRow.next_attempt_at,
                )
                .where(OutboxRow.state.in_((OutboxState.PENDING.value, OutboxState.SENDING.value)))
                .order_by(OutboxRow.seq)
            )
            busy: set[str] = set()
            for item_id, lead_id, kind, state, next_attempt_at in rows:
                group = lead_id if lead_id is not None else f"kind:{kind}"
                if group in busy:
                    continue
                busy.add(group)
                if state == OutboxState.PENDING.value and next_attempt_at <= now:
                    return _item_of(self._row(session, item_id))
            return None

    def _row(self, session: Session, item_id: str) -> OutboxRow:
        row = session.scalar(select(OutboxRow).where(OutboxRow.id == item_id))
        if row is None:
            raise StoreBugError(f"no outbox item {item_id}")
        return row

    def mark_sending(self, item_id: str) -> OutboxItem:
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            if row.state != OutboxState.PENDING.value:
                raise StoreBugError(f"outbox item {item_id} is {row.state}, not pending")
            row.state = OutboxState.SENDING.value
            row.attempts += 1
            row.updated_at = utcnow()
            return _item_of(row)

    def mark_done(self, item_id: str, response: Any = None) -> OutboxItem:
        """The server accepted it. An activity is confirmed locally; a lead taken from this
        agent is dropped once its last item is done."""
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            row.state = OutboxState.DONE.value
            row.response = response
            row.last_error = None
            row.updated_at = utcnow()
            if row.kind == OutboxKind.ACTIVITY.value and row.lead_id is not None:
                activity = session.get(ActivityRow, (row.lead_id, row.idempotency_key))
                if activity is not None:
                    activity.pending = False
            session.flush()
            item = _item_of(row)
            if row.lead_id is not None:
                purge_if_settled(session, row.lead_id)
            return item

    def mark_retry(self, item_id: str, error: str, next_attempt_at: datetime) -> OutboxItem:
        """A network error, 5xx or 409-in-flight: try again at `next_attempt_at`."""
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            row.state = OutboxState.PENDING.value
            row.last_error = error
            row.next_attempt_at = next_attempt_at
            row.updated_at = utcnow()
            return _item_of(row)

    def mark_failed(self, item_id: str, status: int | None, reason: str) -> OutboxItem:
        """Refused for good (4xx): kept, with the server's reason, for the agent to see."""
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            row.state = OutboxState.FAILED.value
            row.failed_status = status
            row.last_error = reason
            row.updated_at = utcnow()
            if row.kind == OutboxKind.MESSAGE.value:
                # The text or e-mail was not sent: its pending history row goes.
                session.execute(
                    delete(ActivityRow).where(
                        ActivityRow.lead_id == row.lead_id,
                        ActivityRow.id == row.idempotency_key,
                        ActivityRow.pending.is_(True),
                    )
                )
            return _item_of(row)

    def settle(self, item_id: str, note: str) -> OutboxItem:
        """Close an item the agent dealt with another way (e.g. an edit conflict resolved by
        choosing: "take theirs" drops the edit, "keep mine" sends a new one). Kept as done with
        `note` as its response, so the log still shows what happened."""
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            if row.state not in (OutboxState.FAILED.value, OutboxState.PENDING.value):
                raise StoreBugError(f"outbox item {item_id} is {row.state}; cannot settle it")
            row.state = OutboxState.DONE.value
            row.response = {"settled": note}
            row.updated_at = utcnow()
            session.flush()
            item = _item_of(row)
            if row.lead_id is not None:
                purge_if_settled(session, row.lead_id)
            return item

    def edit_refused(
        self, item_id: str, current: Mapping[str, Any], changed_by: str
    ) -> list[Conflict]:
        """The server refused a lead edit (409) because the lead changed since its base version.

        In ONE transaction: every edited field whose server value differs becomes a Conflict
        holding both values (the agent chooses later), the local lead takes the server's copy
        (`current`: the 409 body's lead, with version/score/tier/grade/due_at), and the outbox
        item is settled — the conflict rows now carry the agent's values, nothing is lost.
        """
        with self._store.write("saving an edit conflict") as session:
            row = self._row(session, item_id)
            if row.kind != OutboxKind.LEAD_EDIT.value or row.lead_id is None:
                raise StoreBugError(f"outbox item {item_id} is not a lead edit")
            theirs_lead = current.get("lead")
            if not isinstance(theirs_lead, Mapping):
                raise ChangeFeedError("the server's conflict reply holds no lead")
            version = current.get("version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise ChangeFeedError("the server's conflict reply holds no lead version")
            mine = {k: v for k, v in row.body.items() if k != "base_version"}
            conflicts: list[ConflictRow] = []
            for field, value in mine.items():
                theirs = theirs_lead.get(field)
                if _same_value(theirs_lead, field, value):
                    continue  # both sides already agree on this field
                conflicts.append(
                    ConflictRow(
                        lead_id=row.lead_id,
                        field=field,
                        mine=value,
                        theirs=theirs,
                        server_version=version,
                        changed_by=changed_by,
                    )
                )
            try:
                _apply_lead(session, current, _Applied())
            except DomainError as error:
                raise ChangeFeedError(f"the server's copy of the lead: {error}") from error
            session.add_all(conflicts)
            row.state = OutboxState.DONE.value
            row.failed_status = 409
            row.last_error = None
            row.response = {
                "settled": f"edit conflict: {len(conflicts)} field(s) wait for the agent"
            }
            row.updated_at = utcnow()
            session.flush()
            return [_conflict_of(conflict) for conflict in conflicts]

    def requeue(self, item_id: str, now: datetime | None = None) -> OutboxItem:
        """The agent asked to try a failed item again (e.g. after the cause was fixed)."""
        with self._store.write("updating the outbox") as session:
            row = self._row(session, item_id)
            if row.state != OutboxState.FAILED.value:
                raise StoreBugError(f"outbox item {item_id} is {row.state}, not failed")
            row.state = OutboxState.PENDING.value
            row.failed_status = None
            row.next_attempt_at = now or utcnow()
            row.updated_at = utcnow()
            return _item_of(row)

    # Views for the UI

    def get(self, item_id: str) -> OutboxItem | None:
        with self._store.read("reading the outbox") as session:
            row = session.scalar(select(OutboxRow).where(OutboxRow.id == item_id))
            return None if row is None else _item_of(row)

    def failed_items(self) -> list[OutboxItem]:
        with self._store.read("reading the outbox") as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.state == OutboxState.FAILED.value)
                .order_by(OutboxRow.seq)
            )
            return [_item_of(row) for row in rows]

    def open_items(self, lead_id: str | None = None) -> list[OutboxItem]:
        """Items not yet accepted by the server (pending, sending, failed), in order; for a
        lead, what its workspace shows as "will send when online"."""
        with self._store.read("reading the outbox") as session:
            query = select(OutboxRow).where(OutboxRow.state.in_(OPEN_OUTBOX_STATES))
            if lead_id is not None:
                query = query.where(OutboxRow.lead_id == lead_id)
            return [_item_of(row) for row in session.scalars(query.order_by(OutboxRow.seq))]

    def pending_count(self) -> int:
        """Items still to send (pending or sending; failed ones are counted by failed_items)."""
        with self._store.read("reading the outbox") as session:
            count = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.state.in_((OutboxState.PENDING.value, OutboxState.SENDING.value)))
            )
            return int(count or 0)

    def prune_done(self, before: datetime) -> int:
        """Forget items the server accepted before `before` (they are only a local log)."""
        with self._store.write("pruning the outbox") as session:
            result = session.execute(
                delete(OutboxRow).where(
                    OutboxRow.state == OutboxState.DONE.value, OutboxRow.updated_at < before
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)
