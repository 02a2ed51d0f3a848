"""The live queue: the WorkQueue kept in step with the local store as sync applies changes.

Every change the sync engine stores (and every action the agent records) names the leads it
touched; only those are re-derived. A lead the server took away (reassigned, claimed by someone
else, closed) leaves the queue. The ranked items are cached in the store as the "work_items"
dataset so the next start can show the queue before anything is derived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from app.domain.priority import WorkItem
from app.services.workqueue import LeadDetail, WorkQueue
from app.store.db import LocalStore
from app.store.repository import AppliedChanges, Dataset

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def work_item_to_dict(item: WorkItem) -> dict[str, Any]:
    return {
        "lead_id": item.lead_id,
        "kind": item.kind.value,
        "due_at": item.due_at.isoformat(),
        "score": item.score,
        "tier": item.tier,
        "grade": item.grade,
        "name": item.name,
        "vehicle": item.vehicle,
        "source": item.source,
        "action": item.action,
        "channel": item.channel.value if item.channel else None,
        "detail": item.detail,
    }


class QueueService:
    """One agent's queue over the local store. `agent_id` None: everything stored (managers)."""

    def __init__(
        self, store: LocalStore, queue: WorkQueue, agent_id: str | None, clock: Clock
    ) -> None:
        self._store = store
        self._queue = queue
        self._agent_id = agent_id
        self._clock = clock
        self._listeners: list[Callable[[tuple[str, ...]], None]] = []

    @property
    def work_queue(self) -> WorkQueue:
        """The WorkQueue itself (what ui/ widgets take as their LeadSource)."""
        return self._queue

    def on_changed(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        """`listener(lead_ids)` after those leads were re-derived, added or removed."""
        self._listeners.append(listener)

    def load(self) -> int:
        """Fill the queue from the store (start-up); returns how many leads it holds."""
        now = self._clock()
        self._queue.load(self._store.repository.all_leads_with_history(self._agent_id), now)
        return len(self._queue)

    def _mine(self, assigned: str | None) -> bool:
        return self._agent_id is None or assigned in (None, self._agent_id)

    def refresh(self, lead_ids: Iterable[str]) -> tuple[str, ...]:
        """Re-derive these leads from the store (or drop them); tells the listeners."""
        now = self._clock()
        touched: list[str] = []
        repository = self._store.repository
        for lead_id in dict.fromkeys(lead_ids):
            stored = repository.stored_lead(lead_id)
            if (
                stored is None
                or stored.removed_reason is not None
                or not self._mine(stored.lead.assigned_agent_id)
            ):
                if self._queue.remove(lead_id):
                    touched.append(lead_id)
                continue
            self._queue.upsert(stored.lead, repository.history(lead_id), now)
            touched.append(lead_id)
        if touched:
            self._tell(tuple(touched))
        return tuple(touched)

    def applied(self, changes: AppliedChanges) -> None:
        """Sync engine listener: refresh the leads a pulled page touched."""
        lead_ids: list[str] = list(changes.leads)
        lead_ids += [lead_id for lead_id, _ in changes.removed]
        if changes.activities:
            lead_ids += self._store.repository.lead_ids_of_activities(changes.activities)
        self.refresh(lead_ids)

    def _tell(self, lead_ids: tuple[str, ...]) -> None:
        for listener in list(self._listeners):
            try:
                listener(lead_ids)
            except Exception:
                log.exception("queue listener failed")

    def items(self, *, search: str = "") -> list[WorkItem]:
        return self._queue.items(self._clock(), search=search)

    def item_for(self, lead_id: str) -> WorkItem | None:
        return self._queue.item_for(lead_id)

    def detail(self, lead_id: str) -> LeadDetail:
        return self._queue.detail(lead_id, self._clock())

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._queue

    def save_snapshot(self) -> int:
        """Cache the ranked work items in the store ("work_items", fresh as of now)."""
        items = self.items()
        self._store.repository.save_document(
            Dataset.WORK_ITEMS, [work_item_to_dict(i) for i in items], self._clock()
        )
        return len(items)
