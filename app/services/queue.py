"""The live queue: the WorkQueue kept in step with the local store as sync applies changes.

Every change the sync engine stores (and every action the agent records) names the leads it
touched; only those are re-derived. A lead the server took away (reassigned, claimed by someone
else, closed) leaves the queue. The ranked items are cached in the store as the "work_items"
dataset so the next start can show the queue before anything is derived.

Start-up (`load(background=True)`): the snapshot's rows are ranked at once (no lead is read or
derived), then the leads are read in a worker thread and derived on the loop in small chunks,
each telling the listeners which rows changed. A lead asked about before its turn (the selected
row's workspace) is read and derived on demand.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from sys import intern
from typing import Any

from app.background import in_thread
from app.domain.activities import Activity
from app.domain.leads import Channel, Lead
from app.domain.priority import WorkItem, WorkKind
from app.services.workqueue import LeadDetail, Prepared, WorkQueue
from app.store.db import LocalStore
from app.store.repository import AppliedChanges, Dataset, StoredLead

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


# The cached snapshot (version 3): one row (a JSON array) per item, in SNAPSHOT_COLUMNS order,
# the texts many rows share (kind, tier, grade, vehicle, source, action, channel, detail) as
# indexes into one "strings" list: it reads several times faster than an object per item, and
# the rows share those strings in memory. Older snapshots (an object per item, bare or under
# "items") are read too.
SNAPSHOT_VERSION = 3
SNAPSHOT_COLUMNS = (
    "lead_id",
    "kind",
    "due_at",
    "score",
    "tier",
    "grade",
    "name",
    "vehicle",
    "source",
    "action",
    "channel",
    "detail",
)


def snapshot_content(items: Iterable[WorkItem], leads: int) -> dict[str, Any]:
    strings: dict[str | None, int] = {}

    def index(text: str | None) -> int:
        return strings.setdefault(text, len(strings))

    rows = [
        [
            item.lead_id,
            index(item.kind.value),
            item.due_at.isoformat(),
            item.score,
            index(item.tier),
            index(item.grade),
            item.name,
            index(item.vehicle),
            index(item.source),
            index(item.action),
            index(item.channel.value if item.channel else None),
            index(item.detail),
        ]
        for item in items
    ]
    return {
        "version": SNAPSHOT_VERSION,
        "columns": SNAPSHOT_COLUMNS,
        "strings": list(strings),
        "rows": rows,
        "leads": leads,
    }


def _items_of_rows(strings: Sequence[str | None], rows: Iterable[Sequence[Any]]) -> list[WorkItem]:
    kinds = [WorkKind(text) if text in _KINDS else None for text in strings]
    channels = [Channel(text) if text in _CHANNELS else None for text in strings]
    items = []
    for row in rows:
        (
            lead_id,
            kind,
            due_at,
            score,
            tier,
            grade,
            name,
            vehicle,
            source,
            action,
            channel,
            detail,
        ) = row
        items.append(
            WorkItem(
                lead_id=lead_id,
                kind=kinds[kind],  # type: ignore[arg-type]
                due_at=datetime.fromisoformat(due_at),
                score=score,
                tier=strings[tier],  # type: ignore[arg-type]
                grade=strings[grade],  # type: ignore[arg-type]
                name=name,
                vehicle=strings[vehicle],  # type: ignore[arg-type]
                source=strings[source],  # type: ignore[arg-type]
                action=strings[action],  # type: ignore[arg-type]
                channel=channels[channel],
                detail=strings[detail] or "",
            )
        )
    return items


_KINDS = {kind.value for kind in WorkKind}
_CHANNELS = {channel.value for channel in Channel}


def snapshot_items(content: Any) -> tuple[list[WorkItem], int]:
    """The items of a cached snapshot, any version, and how many leads the queue held."""
    if isinstance(content, Mapping) and content.get("version") == SNAPSHOT_VERSION:
        if tuple(content["columns"]) != SNAPSHOT_COLUMNS:
            raise ValueError(f"unknown snapshot columns {content['columns']!r}")
        strings = [intern(text) if isinstance(text, str) else text for text in content["strings"]]
        return _items_of_rows(strings, content["rows"]), int(content["leads"])
    if isinstance(content, Mapping):
        return [work_item_of(i) for i in content["items"]], int(content["leads"])
    items = [work_item_of(i) for i in content]  # the first snapshots: the items alone
    return items, len(items)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def work_item_of(data: Mapping[str, Any]) -> WorkItem:
    return WorkItem(
        lead_id=data["lead_id"],
        kind=WorkKind(data["kind"]),
        due_at=datetime.fromisoformat(data["due_at"]),
        score=int(data["score"]),
        tier=data["tier"],
        grade=data["grade"],
        name=data["name"],
        vehicle=data["vehicle"],
        source=data["source"],
        action=data["action"],
        channel=Channel(data["channel"]) if data.get("channel") else None,
        detail=data.get("detail") or "",
    )


# Leads derived per step of the background start-up (~0.6 ms each: the loop stays responsive).
LOAD_CHUNK = 50
# Leads read per query pair when a bulk download's leads are refreshed.
FLUSH_CHUNK = 500
# A bulk download's leads are put in the queue (and told to the listeners) this many at a time:
# few large updates of the window instead of a row operation per lead (besides costing more,
# PySide6 6.12 on Python 3.11 loses a reference to None per row operation, and 50,000 of them
# crashed the program).
BULK_TELL = 2500
# A bulk download whose next page does not come within this long is refreshed all the same.
BULK_IDLE_SECONDS = 10.0
# At most this many leads' page reads are kept waiting for their derivation (a download faster
# than the derivation must not hold every history in memory): the others are read back.
MAX_READY_LEADS = 5000
# A pulled page touching this many leads is a bulk download (the first sync, a long absence):
# its leads are refreshed together a second after the first such page, each lead once however
# many pages touched it meanwhile, instead of page by page.
BULK_PAGE_LEADS = 100
BULK_FLUSH_SECONDS = 1.0


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
        self._loading: asyncio.Task[None] | None = None
        self._stop_loading = False
        self._pending: dict[str, None] = {}  # bulk pages' leads waiting for one refresh
        self._flush: asyncio.Handle | None = None
        self._flush_due = 0.0  # the loop's time it is due at
        self._downloading = False  # pages said more follow: the last one flushes
        self._flushing: asyncio.Task[None] | None = None
        # Bulk reads are numbered as they start; a lead refreshed while a flush runs is noted
        # with the number of the last read started then: a staged entry read before that
        # refresh is stale, one read after it (a newer change to the lead) is not.
        self._reads = 0
        self._fresher: dict[str, int] = {}
        # A first download's leads as its pages stored them (AppliedChanges.read), with the
        # number of the read they count as: derived without reading them back.
        self._ready: dict[str, tuple[int, tuple[StoredLead, list[Activity]]]] = {}
        self._flush_failed = False  # the last flush failed: its leads wait for the retry
        # Only the rows and search texts stay in memory: the workspace reads its lead.
        queue.read_from(self._fetch)
        # Leads the queue found gone when asked about: told to the listeners once the caller
        # (the window showing the lead) has returned.
        self._asked: dict[str, None] = {}
        self._tell_asked: asyncio.Handle | None = None
        queue.on_changed_by_asking(self._changed_by_asking)

    @property
    def work_queue(self) -> WorkQueue:
        """The WorkQueue itself (what ui/ widgets take as their LeadSource)."""
        return self._queue

    def on_changed(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        """`listener(lead_ids)` after those leads were re-derived, added or removed."""
        self._listeners.append(listener)

    def load(self, *, background: bool = False) -> int:
        """Fill the queue from the store (start-up); returns how many leads it holds.

        `background` (on a running asyncio loop): show the cached snapshot at once and derive the
        leads in the background (`loaded()` waits for it); without a snapshot, as without it.
        """
        now = self._clock()
        snapshot = self._snapshot() if background else None
        if snapshot is None:
            self._queue.load(self._store.repository.all_leads_with_history(self._agent_id), now)
            return len(self._queue)
        items, leads = snapshot
        self._queue.show_snapshot(items, now, leads=leads, fetch=self._fetch)
        self._stop_loading = False
        self._loading = asyncio.ensure_future(self._load_in_background())
        return len(self._queue)

    def _snapshot(self) -> tuple[list[WorkItem], int] | None:
        try:
            # As stored, not frozen: read once here, never handed out.
            content = self._store.repository.document_content(Dataset.WORK_ITEMS)
            return None if content is None else snapshot_items(content)
        except Exception:
            log.exception("the cached queue could not be read: loading from the leads")
            return None

    def _fetch(self, lead_id: str) -> tuple[Lead, list[Activity]] | None:
        read = self._store.repository.leads_with_history((lead_id,)).get(lead_id)
        if (
            read is None
            or read[0].removed_reason is not None
            or not self._mine(read[0].lead.assigned_agent_id)
        ):
            return None
        return read[0].lead, read[1]

    async def _load_in_background(self) -> None:
        """Read the queue's leads in chunks in a worker thread (a chunk in memory at a time,
        not every lead with its history) and derive them on the loop, 50 at a time."""
        try:
            repository = self._store.repository
            lead_ids = await in_thread(repository.queue_lead_ids, self._agent_id)
            loaded: set[str] = set()
            for first in range(0, len(lead_ids), FLUSH_CHUNK):
                chunk = lead_ids[first : first + FLUSH_CHUNK]
                found = await in_thread(repository.leads_with_history, chunk)
                pairs = [
                    (read[0].lead, read[1])
                    for lead_id in chunk
                    if (read := found.get(lead_id)) is not None
                    and read[0].removed_reason is None
                    and self._mine(read[0].lead.assigned_agent_id)
                ]
                del found
                for start in range(0, len(pairs), LOAD_CHUNK):
                    if self._stop_loading:
                        return
                    part = pairs[start : start + LOAD_CHUNK]
                    loaded.update(lead.id for lead, _ in part)
                    changed = self._queue.derive_loaded(part, self._clock())
                    if changed:
                        self._tell(tuple(changed))
                    await asyncio.sleep(0)
            gone = self._queue.finish_loading(loaded)
            self._tell(tuple(gone))
        except Exception:
            log.exception("loading the queue in the background failed")
            self._queue.finish_loading(None)

    @property
    def loading(self) -> bool:
        return self._loading is not None and not self._loading.done()

    async def loaded(self) -> None:
        """Wait until the background start-up (if any) has derived every lead."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

    async def stop_loading(self) -> None:
        """Stop the background start-up (closing): waits for a read under way to end; bulk
        pages' leads waiting for their refresh get it now."""
        flushing = self._flushing
        if flushing is not None:
            await asyncio.shield(flushing)
        self._flush_logged()
        task, self._loading = self._loading, None
        if task is not None and not task.done():
            self._stop_loading = True
            await task

    def _mine(self, assigned: str | None) -> bool:
        return self._agent_id is None or assigned in (None, self._agent_id)

    def _wanted(self, stored: StoredLead) -> bool:
        """In this queue: not taken away, and this agent's or the pool's."""
        return stored.removed_reason is None and self._mine(stored.lead.assigned_agent_id)

    def refresh(self, lead_ids: Iterable[str]) -> tuple[str, ...]:
        """Re-derive these leads from the store (or drop them); tells the listeners."""
        ids = list(dict.fromkeys(lead_ids))
        for lead_id in ids:
            self._ready.pop(lead_id, None)  # read again now: newer
        if self._flushing is not None:
            # a bulk read under way must not undo these (one started later may: it is newer)
            self._fresher.update(dict.fromkeys(ids, self._reads))
        touched = self._apply_read(ids, self._store.repository.leads_with_history(ids))
        if touched:
            self._tell(tuple(touched))
        return tuple(touched)

    def _apply_read(
        self, lead_ids: list[str], found: Mapping[str, tuple[StoredLead, list[Activity]]]
    ) -> list[str]:
        """Derive (or drop) `lead_ids` as read (`found`: what the store holds of them)."""
        now = self._clock()
        touched: list[str] = []
        for lead_id in lead_ids:
            read = found.get(lead_id)
            if read is None or not self._wanted(read[0]):
                if self._queue.remove(lead_id):
                    touched.append(lead_id)
                continue
            self._queue.upsert(read[0].lead, read[1], now)
            touched.append(lead_id)
        return touched

    def applied(self, changes: AppliedChanges) -> None:
        """Sync engine listener: refresh the leads a pulled page touched. A bulk download's
        leads are refreshed once it ends (`changes.more` False), each once however many pages
        touched it, in the background (`settled()` waits for it); a lone bulk page's a moment
        later, together with the next pages'. A snapshot's pages (`changes.whole`) are
        refreshed as they arrive: their leads are complete."""
        lead_ids: list[str] = list(changes.leads)
        lead_ids += [lead_id for lead_id, _ in changes.removed]
        lead_ids += changes.activity_leads
        reads = changes.read or {}
        for lead_id in lead_ids:
            if lead_id not in reads:
                self._ready.pop(lead_id, None)  # changed since its page's read
        if reads and len(self._ready) < MAX_READY_LEADS:
            self._reads += 1
            for lead_id, read in reads.items():
                # Only leads new to the queue: one already shown may have been acted on after
                # its page was stored (its refresh then was newer than this read).
                if lead_id not in self._queue:
                    self._ready[lead_id] = (self._reads, read)
        loop = _running_loop()
        bulk = self._pending or self._flushing is not None or changes.more
        if loop is None or not (bulk or len(set(lead_ids)) >= BULK_PAGE_LEADS):
            self.refresh(lead_ids)
            return
        self._pending.update(dict.fromkeys(lead_ids))
        if changes.more and changes.whole:
            # A snapshot page: its leads are complete, derived while the next pages load (the
            # rows fill in as the download goes).
            self._downloading = True
            delay = 0.0
        elif changes.more:
            self._downloading = True
            delay = BULK_IDLE_SECONDS  # only if the download stalls: its last page flushes
        else:
            delay = 0.0 if self._downloading else BULK_FLUSH_SECONDS
            self._downloading = False
        due = loop.time() + delay
        # Re-armed while the download goes on; brought forward when it ends.
        if self._flush is None or changes.more or self._flush_due > due:
            if self._flush is not None:
                self._flush.cancel()
            # (qasync's timer handles do not tell their time: it is kept here)
            self._flush, self._flush_due = loop.call_at(due, self._start_flush), due

    def _start_flush(self) -> None:
        self._flush = None
        if self._flushing is None and self._pending:
            self._flushing = asyncio.ensure_future(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        """Refresh the waiting leads: read 500 at a time in a worker thread (two queries),
        derived 50 at a time on the loop without changing the queue, then put in together
        and told to the listeners every BULK_TELL leads; until none waits.

        A lead whose derivation fails is logged and left as it is (the others go on). A read
        that fails puts its chunk back with the leads still waiting, what was derived is put
        in, and the refresh is tried again BULK_IDLE_SECONDS later."""
        staged: list[tuple[str, int, Prepared | None]] = []
        self._flush_failed = False
        self._fresher = {}
        try:
            while self._pending and not self._stop_loading:
                chunk = list(itertools.islice(self._pending, FLUSH_CHUNK))
                for lead_id in chunk:
                    del self._pending[lead_id]
                ready = {i: self._ready.pop(i) for i in chunk if i in self._ready}
                to_read = [i for i in chunk if i not in ready]
                found: Mapping[str, tuple[StoredLead, list[Activity]]] = {}
                read_no = self._reads
                if to_read:
                    self._reads += 1
                    read_no = self._reads
                    try:
                        found = await in_thread(self._store.repository.leads_with_history, to_read)
                    except Exception:
                        log.exception("reading the leads of a bulk download failed: tried again")
                        self._pending.update(dict.fromkeys(chunk))
                        self._ready.update(ready)
                        self._flush_failed = True
                        break
                for start in range(0, len(chunk), LOAD_CHUNK):
                    now = self._clock()
                    for lead_id in chunk[start : start + LOAD_CHUNK]:
                        number, read = ready.get(lead_id) or (read_no, found.get(lead_id))
                        if read is None or not self._wanted(read[0]):
                            staged.append((lead_id, number, None))
                            continue
                        try:
                            prepared = self._queue.prepare(read[0].lead, read[1], now)
                        except Exception:
                            log.exception("lead %s could not be derived: left as it was", lead_id)
                            continue
                        staged.append((lead_id, number, prepared))
                    await asyncio.sleep(0)  # the loop stays responsive
                del found, ready
                if len(staged) >= BULK_TELL or not self._pending:
                    put, staged = staged, []
                    self._put_staged(put)
                    self._fresher = {}  # every read noted so far is put
        except Exception:
            log.exception("refreshing the queue after a bulk download failed")
            self._flush_failed = True
        finally:
            try:
                if staged:
                    self._put_staged(staged)
            except Exception:
                log.exception("refreshing the queue after a bulk download failed")
                self._flush_failed = True
            self._flushing = None
            self._fresher = {}
            if self._flush_failed and self._pending:
                self._retry_flush()

    def _retry_flush(self) -> None:
        loop = _running_loop()
        if loop is None or self._flush is not None:
            return  # (a timer is armed already: it flushes)
        due = loop.time() + BULK_IDLE_SECONDS
        self._flush, self._flush_due = loop.call_at(due, self._start_flush), due

    def _put_staged(self, staged: list[tuple[str, int, Prepared | None]]) -> None:
        """Put derived leads in the queue (None: drop it), except those refreshed after their
        read started (`read_no`); tells the listeners once."""
        now = self._clock()
        touched: list[str] = []
        fresher = self._fresher
        for lead_id, read_no, prepared in staged:
            if fresher.get(lead_id, 0) >= read_no:
                continue
            if prepared is None:
                if self._queue.remove(lead_id):
                    touched.append(lead_id)
            else:
                self._queue.put_prepared(prepared, now)
                touched.append(lead_id)
        if touched:
            self._tell(tuple(touched))

    @property
    def refreshing(self) -> bool:
        """Leads of a bulk download wait for (or are in) their refresh."""
        return bool(self._pending) or self._flushing is not None

    async def settled(self) -> None:
        """Wait until the leads bulk pages touched are refreshed (at once if none wait)."""
        while self.refreshing:
            if self._flushing is None:
                self._start_flush()
            task = self._flushing
            if task is not None:
                await asyncio.shield(task)
                if self._flush_failed:
                    return  # tried again later (its timer): not waited for

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("refreshing the queue after a bulk download failed")

    def flush(self) -> tuple[str, ...]:
        """Refresh the leads bulk pages touched now (each once)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        pending, self._pending = self._pending, {}
        return self.refresh(pending) if pending else ()

    def _changed_by_asking(self, lead_id: str) -> None:
        self._asked[lead_id] = None
        loop = _running_loop()
        if loop is None:
            self._told_asked()
        elif self._tell_asked is None:
            self._tell_asked = loop.call_soon(self._told_asked)

    def _told_asked(self) -> None:
        self._tell_asked = None
        asked, self._asked = self._asked, {}
        if asked:
            self._tell(tuple(asked))

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
        content = snapshot_content(items, len(self._queue))
        self._store.repository.save_document(Dataset.WORK_ITEMS, content, self._clock())
        return len(items)
