"""Edit conflicts: a lead field the agent changed while somebody else changed it on the server.

The server refused the agent's edit (409); both values are kept in the local store. The agent
reads "changed on the server by X — keep mine / take theirs" and chooses: theirs is already the
lead's value here; mine is sent again as a new edit on the server's version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.store.db import LocalStore
from app.store.repository import Conflict


class Choice(StrEnum):
    KEEP_MINE = "keep_mine"
    TAKE_THEIRS = "take_theirs"


@dataclass(frozen=True, slots=True)
class PendingConflict:
    """One field waiting for the agent's choice (values in the wire format, read-only)."""

    id: int
    lead_id: str
    field: str
    mine: Any
    theirs: Any
    changed_by: str
    created_at: datetime

    @property
    def prompt(self) -> str:
        return (
            f"{self.field} was changed on the server by {self.changed_by}: "
            "keep yours or take theirs?"
        )


@dataclass(frozen=True, slots=True)
class Resolution:
    conflict_id: int
    lead_id: str
    field: str
    choice: Choice
    outbox_id: str | None  # the new edit sent for "keep mine"


def _pending(conflict: Conflict) -> PendingConflict:
    return PendingConflict(
        conflict.id,
        conflict.lead_id,
        conflict.field,
        conflict.mine,
        conflict.theirs,
        conflict.changed_by,
        conflict.created_at,
    )


def _thaw(value: Any) -> Any:
    """Read-only JSON (mapping proxies, tuples) back to plain JSON for a request body."""
    if hasattr(value, "items"):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


class ConflictService:
    def __init__(
        self,
        store: LocalStore,
        *,
        outbox_changed: Callable[[], None],
        lead_changed: Callable[[tuple[str, ...]], Any],
    ) -> None:
        self._store = store
        self._outbox_changed = outbox_changed
        self._lead_changed = lead_changed

    def pending(self, lead_id: str | None = None) -> list[PendingConflict]:
        return [_pending(c) for c in self._store.repository.conflicts(lead_id)]

    async def resolve(self, conflict_id: int, choice: Choice | str) -> Resolution:
        choice = Choice(choice)
        repository = self._store.repository
        conflict = next((c for c in repository.conflicts() if c.id == conflict_id), None)
        if conflict is None:
            raise LookupError(f"no open edit conflict {conflict_id}")
        outbox_id = None
        if choice is Choice.KEEP_MINE:
            stored = repository.stored_lead(conflict.lead_id)
            if stored is None:
                raise LookupError(f"lead {conflict.lead_id} is no longer in the local store")
            item = self._store.outbox.record_lead_edit(
                conflict.lead_id, stored.lead.version, {conflict.field: _thaw(conflict.mine)}
            )
            outbox_id = item.id
            self._outbox_changed()
        repository.resolve_conflict(conflict_id, "mine" if choice is Choice.KEEP_MINE else "theirs")
        self._lead_changed((conflict.lead_id,))
        return Resolution(conflict_id, conflict.lead_id, conflict.field, choice, outbox_id)
