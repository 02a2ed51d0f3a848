"""The sync engine: pushes the outbox, pulls the change feed, listens for SSE pokes.

Offline-first: the agent's actions are already durable in the local store (the outbox) before
the engine sees them. The engine only moves them to the server, in order, exactly once (each
carries its Idempotency-Key), and applies what the server changed. It never blocks the UI: it
runs as asyncio tasks whose strong references it keeps, and publishes its state to listeners.

- Push: items in seq order (per lead); network errors, 5xx and 409-in-flight are retried with
  full-jitter backoff; a 4xx stops that item (kept as "failed" with the server's reason, shown
  as a Notice); a 409 on a lead edit becomes edit conflicts (both values kept, agent chooses);
  401 switches to "sign-in expired" and keeps everything for after the password is given again.
- Pull: GET /v1/changes from the stored cursor, each page applied with its cursor in one
  transaction. A first download (no cursor yet) and a 410 (the cursor is older than the
  server's log) load GET /v1/snapshot instead: every lead with its whole history, a page a
  transaction, then the feed from where the snapshot began (progress in
  SyncStatus.snapshot_loaded / snapshot_total).
- Live: SSE pokes trigger pulls; every (re)connect pulls; reconnects back off; without SSE the
  pull loop polls every `poll_interval`; a wall-clock jump beyond the monotonic clock (the PC
  slept) pulls and pushes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from app.background import in_thread, young_collections_only
from app.store.db import LocalStore
from app.store.outbox import OutboxItem, OutboxKind
from app.store.repository import AppliedChanges, BlockKind, ChangeFeedError, Dataset
from app.sync.api import (
    ApiError,
    ChangesPage,
    LeadApi,
    NetworkError,
    Rejected,
    ResyncNeeded,
    ServerBusy,
    SignInExpired,
    SnapshotError,
    SnapshotPage,
    parse_snapshot_page,
)
from app.sync.rules import RulesUpdate, refresh_rules

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "Connectivity",
    "Notice",
    "NoticeKind",
    "SyncEngine",
    "SyncSettings",
    "SyncStatus",
    "backoff_delay",
]


class Connectivity(StrEnum):
    ONLINE = "online"
    SYNCING = "syncing"
    OFFLINE = "offline"
    SIGN_IN_EXPIRED = "sign_in_expired"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the status bar shows."""

    connectivity: Connectivity = Connectivity.OFFLINE
    pending: int = 0  # outbox items not yet confirmed by the server
    failed: int = 0  # outbox items the server refused (kept, shown to the agent)
    last_sync: datetime | None = None  # last successful pull
    last_error: str = ""  # why the last attempt failed ("" after a success)
    live: bool = False  # SSE connected (else polling)
    # A snapshot under way (a first download or a full resync): leads stored so far, of how many
    snapshot_loaded: int | None = None
    snapshot_total: int | None = None


class NoticeKind(StrEnum):
    REFUSED = "refused"  # the server refused an action (4xx): kept as failed, with the reason
    CONFLICT = "conflict"  # a lead edit met a newer server version: agent chooses
    LEAD_REMOVED = "lead_removed"  # a lead left this agent's queue (e.g. reassigned)
    SIGN_IN_EXPIRED = "sign_in_expired"
    RESYNCED = "resynced"  # a full resync finished
    RULES_UPDATED = "rules_updated"  # the server's rules changed and are cached here
    RULES_REFUSED = "rules_refused"  # the server's new rules are broken: the previous set stays


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the agent should read, once."""

    kind: NoticeKind
    message: str
    lead_id: str | None = None
    outbox_id: str | None = None


@dataclass(frozen=True)
class SyncSettings:
    poll_interval: float = 5.0  # seconds between pulls when SSE is unavailable
    live_safety_interval: float = 60.0  # pulls while SSE is up, in case a poke is lost
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    # A wall-clock jump this much beyond the monotonic clock = the PC slept.
    sleep_jump: float = 20.0
    sleep_check_interval: float = 5.0
    page_size: int = 500
    bulk_page_size: int = 1000  # after a full page (the server's maximum)
    snapshot_page_size: int = 500  # leads (with their histories) per GET /v1/snapshot page
    use_sse: bool = True
    sse_min_reconnect: float = 0.2
    rules_interval: float = 300.0  # seconds between checks of the server's rules version


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * (2 ** min(attempt, 16))))


class SyncEngine:
    def __init__(
        self,
        api: LeadApi,
        store: LocalStore,
        *,
        settings: SyncSettings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._store = store
        self._settings = settings or SyncSettings()
        self._now = now
        self._wall = wall_clock
        self._mono = monotonic
        self._rng = rng or random.Random()
        self._listeners: list[Callable[[SyncStatus], None]] = []
        self._change_listeners: list[Callable[[AppliedChanges], None]] = []
        self._notice_listeners: list[Callable[[Notice], None]] = []
        # Raw feed entries some other part consumes (e.g. server-side call state for the
        # dialer): called with each change's data after its page was stored.
        self._entity_listeners: dict[str, list[Callable[[Mapping[str, Any]], None]]] = {}
        saved = store.repository.sync_state()
        self._state = SyncStatus(last_sync=saved.last_success_at, last_error=saved.last_error or "")
        self._wake_push = asyncio.Event()
        self._wake_pull = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._pull_lock = asyncio.Lock()
        self._push_lock = asyncio.Lock()
        self._blocks_unsupported = False  # the server has no GET /v1/contact-blocks
        self._snapshot_unsupported = False  # the server has no GET /v1/snapshot (older)
        self._rules_checked: float | None = None  # monotonic time of the last rules check
        self._rules_refused: str | None = None  # the version last refused (told once)
        self.rules_update: RulesUpdate | None = None  # the last rules check's result
        self.pulls = 0  # completed pulls (for diagnostics and tests)
        self.wakeups = 0  # sleep/wake detections

    @property
    def settings(self) -> SyncSettings:
        return self._settings

    # Observation

    @property
    def state(self) -> SyncStatus:
        return self._state

    def subscribe(self, listener: Callable[[SyncStatus], None]) -> None:
        """`listener(status)` now and after every change of the status."""
        self._listeners.append(listener)
        listener(self._state)

    def on_applied(self, listener: Callable[[AppliedChanges], None]) -> None:
        """Called after each page of server changes is stored (the queue refreshes those leads)."""
        self._change_listeners.append(listener)

    def on_entity(self, entity: str, listener: Callable[[Mapping[str, Any]], None]) -> None:
        """`listener(data)` for every pulled change of `entity`, in feed order."""
        self._entity_listeners.setdefault(entity, []).append(listener)

    def _dispatch_entities(self, changes: Sequence[Any]) -> None:
        for change in changes:
            for listener in list(self._entity_listeners.get(change.entity, ())):
                try:
                    listener(change.data)
                except Exception:  # a broken consumer must not stop sync
                    log.exception("listener for %s changes failed", change.entity)

    def on_notice(self, listener: Callable[[Notice], None]) -> None:
        self._notice_listeners.append(listener)

    def server_offset(self) -> timedelta:
        """Server clock minus this PC's clock (best estimate so far)."""
        return self._api.clock_offset

    def _cursor(self) -> int:
        return int(self._store.repository.cursor() or 0)

    def _applied(self, applied: AppliedChanges) -> None:
        for listener in list(self._change_listeners):
            try:
                listener(applied)
            except Exception:
                log.exception("change listener failed")
        for lead_id, reason in applied.removed:
            self._notify(
                Notice(
                    NoticeKind.LEAD_REMOVED,
                    f"a lead left your queue: {reason}",
                    lead_id=lead_id,
                )
            )

    def _notify(self, notice: Notice) -> None:
        for listener in list(self._notice_listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("notice listener failed")

    def _publish(self, **changes: Any) -> None:
        outbox = self._store.outbox
        changes.setdefault("pending", outbox.pending_count())
        changes.setdefault("failed", len(outbox.failed_items()))
        new = replace(self._state, **changes)
        if new != self._state:
            self._state = new
            for listener in list(self._listeners):
                try:
                    listener(new)
                except Exception:  # a broken listener must not stop sync
                    log.exception("sync state listener failed")

    def _expired(self, exc: SignInExpired) -> None:
        if self._state.connectivity is not Connectivity.SIGN_IN_EXPIRED:
            self._notify(
                Notice(
                    NoticeKind.SIGN_IN_EXPIRED,
                    "your sign-in expired: enter your password again; nothing you did is lost",
                )
            )
        self._publish(connectivity=Connectivity.SIGN_IN_EXPIRED, last_error=str(exc))
        with contextlib.suppress(Exception):
            self._store.repository.record_sync_failure(str(exc))

    def _failed(self, exc: ApiError, *, offline: bool) -> None:
        connectivity = self._state.connectivity
        if offline:
            connectivity = Connectivity.OFFLINE
        self._publish(connectivity=connectivity, last_error=str(exc))
        with contextlib.suppress(Exception):
            self._store.repository.record_sync_failure(str(exc))

    # Control

    def start(self) -> None:
        """Start the push, pull and live-update loops (keeps strong references to them)."""
        self._stopping = False
        loops = [self._push_loop, self._pull_loop, self._sleep_watch]
        if self._settings.use_sse:
            loops.append(self._events_loop)
        for loop in loops:
            task = asyncio.ensure_future(loop())
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sync task failed", exc_info=task.exception())

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def outbox_changed(self) -> None:
        """Called after the agent did something: push now."""
        self._wake_push.set()
        self._publish()

    def pull_now(self) -> None:
        self._wake_pull.set()

    def signed_in_again(self, token: str) -> None:
        """A fresh token after 'sign-in expired': resume everything, outbox intact."""
        self._api.token = token
        self._publish(connectivity=Connectivity.SYNCING, last_error="")
        self._wake_push.set()
        self._wake_pull.set()

    # Push

    async def push_once(self) -> int:
        """Send due outbox items in order until empty or blocked. Returns how many were sent."""
        async with self._push_lock:
            return await self._push()

    async def _push(self) -> int:
        sent = 0
        outbox = self._store.outbox
        while True:  # stop() cancels the task running this
            item = outbox.next_due(self._now())
            if item is None:
                break
            outbox.mark_sending(item.id)
            try:
                reply = await self._api.send(
                    item.method, item.path, item.body, idempotency_key=item.idempotency_key
                )
            except Rejected as exc:
                self._refused(item, exc)
                continue
            except (NetworkError, ServerBusy) as exc:
                delay = backoff_delay(
                    item.attempts,
                    self._settings.backoff_base,
                    self._settings.backoff_max,
                    self._rng,
                )
                if isinstance(exc, ServerBusy) and exc.retry_after:
                    delay = max(delay, min(exc.retry_after, self._settings.backoff_max))
                outbox.mark_retry(item.id, str(exc), self._now() + timedelta(seconds=delay))
                self._failed(exc, offline=isinstance(exc, NetworkError))
                break
            except SignInExpired as exc:
                outbox.mark_retry(item.id, str(exc), self._now())
                self._expired(exc)
                break
            except BaseException:
                # Cancelled mid-send (shutdown): the item goes back to pending; the
                # Idempotency-Key makes the resend safe.
                with contextlib.suppress(Exception):
                    outbox.mark_retry(item.id, "interrupted", self._now())
                raise
            outbox.mark_done(item.id, reply.body)
            sent += 1
            self._publish(connectivity=Connectivity.ONLINE, last_error="")
        return sent

    def _refused(self, item: OutboxItem, exc: Rejected) -> None:
        outbox = self._store.outbox
        body = exc.body if isinstance(exc.body, Mapping) else {}
        current = body.get("current")
        if item.kind is OutboxKind.LEAD_EDIT and exc.status == 409 and isinstance(current, Mapping):
            changed_by = str(current.get("updated_by") or "another user")
            conflicts = outbox.edit_refused(item.id, current, changed_by)
            self._applied(AppliedChanges(leads=(item.lead_id,) if item.lead_id else ()))
            fields = ", ".join(c.field for c in conflicts) or "nothing"
            self._notify(
                Notice(
                    NoticeKind.CONFLICT,
                    f"changed on the server by {changed_by} while you edited it ({fields}): "
                    "keep yours or take theirs",
                    lead_id=item.lead_id,
                    outbox_id=item.id,
                )
            )
            self._publish()
            return
        reason = str(exc)
        stored = self._store.repository.stored_lead(item.lead_id) if item.lead_id else None
        if stored is not None and stored.removed_reason:
            reason = f"{reason} (the lead is no longer yours: {stored.removed_reason})"
        outbox.mark_failed(item.id, exc.status, reason)
        self._notify(
            Notice(
                NoticeKind.REFUSED,
                f"the server refused this {item.kind.value.replace('_', ' ')}: {reason}",
                lead_id=item.lead_id,
                outbox_id=item.id,
            )
        )
        self._publish(last_error=f"refused by the server: {reason}")

    async def _push_loop(self) -> None:
        while not self._stopping:
            # Cleared BEFORE the work: a wake-up that arrives during it is not lost.
            self._wake_push.clear()
            if self._state.connectivity is not Connectivity.SIGN_IN_EXPIRED:
                try:
                    await self.push_once()
                except ApiError as exc:
                    log.info("push failed: %s", exc)
                except Exception:
                    log.exception("push failed")
            # Wake on a new action, or when the earliest retry may be due.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_push.wait(), timeout=self._next_push_wait())

    def _next_push_wait(self) -> float:
        item = self._store.outbox.next_due(self._now() + timedelta(days=3650))
        if item is None:
            return 5.0
        wait = (item.next_attempt_at - self._now()).total_seconds()
        return min(max(wait, 0.02), 5.0)

    # Pull

    async def pull_once(self) -> int:
        """Pull every page of changes since the cursor; each page is applied atomically."""
        async with self._pull_lock:
            return await self._pull()

    async def _pull(self) -> int:
        applied = 0
        if self._state.connectivity is not Connectivity.ONLINE:
            self._publish(connectivity=Connectivity.SYNCING)
        try:
            snapshot = False
            if self._store.repository.cursor() is None and not self._snapshot_unsupported:
                # A first download: the leads as they are now, not their whole change history
                # (the block lists come with it, from where it begins).
                snapshot = await self.load_snapshot()
            if (
                not snapshot
                and not self._blocks_unsupported
                and self._store.repository.freshness(Dataset.OPT_OUTS) is None
            ):
                # Never downloaded whole (a new PC, or blocks older than the feed): once, then
                # the change feed keeps them current.
                await self.download_contact_blocks()
            size = self._settings.page_size
            page: ChangesPage = await self._api.changes(self._cursor(), size)
            while True:
                following: asyncio.Future[ChangesPage] | None = None
                if page.has_more:
                    # A long download: bigger pages, fewer round trips and transactions; the
                    # server reads the next page while this one is stored (in a worker thread:
                    # the loop sends the request and stays responsive).
                    size = max(size, self._settings.bulk_page_size)
                    following = asyncio.ensure_future(self._api.changes(page.next_cursor, size))
                result = await _while_fetching(self._store_page(page), following)
                if page.changes:
                    self._applied(replace(result, more=page.has_more))
                    self._dispatch_entities(page.changes)
                applied += len(page.changes)
                if following is None:
                    break
                page = await following
        except ResyncNeeded as exc:
            await self.full_resync(exc.newest or 0)
        except NetworkError as exc:
            self._failed(exc, offline=True)
            raise
        except ServerBusy as exc:
            self._failed(exc, offline=False)
            raise
        except SignInExpired as exc:
            self._expired(exc)
            raise
        except (SnapshotError, ChangeFeedError) as exc:
            # the server sent what this version cannot store: said, and tried again later
            self._failed(ApiError(str(exc)), offline=False)
            raise
        now = self._now()
        self._store.repository.record_sync_success(now, self._api.clock_offset.total_seconds())
        self.pulls += 1
        if self._state.connectivity is Connectivity.SIGN_IN_EXPIRED:
            # A write was refused the token while this pull still ran on it: that stands (the
            # agent was told once; "online" now would tell them again at the next 401).
            self._publish(last_sync=now)
            return applied
        self._publish(connectivity=Connectivity.ONLINE, last_sync=now, last_error="")
        await self._check_rules()  # after the queue is current and the state says online
        return applied

    async def _store_page(self, page: ChangesPage) -> AppliedChanges:
        changes = [
            {"seq": c.seq, "entity": c.entity, "entity_id": c.entity_id, "data": c.data}
            for c in page.changes
        ]
        return await self._stored(
            self._store.repository.apply_changes,
            changes,
            str(page.next_cursor),
            fresh_as_of=self._now(),
        )

    async def _stored(self, write_fn: Callable[..., AppliedChanges], *args: Any, **kw: Any) -> Any:
        """A store write in a worker thread (the loop stays responsive), finished even when
        the pull is cancelled meanwhile: its transaction ends before the store may close."""
        write = asyncio.ensure_future(in_thread(write_fn, *args, **kw))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await write
            raise

    async def load_snapshot(self, *, resync: bool = False) -> bool:
        """Download every lead this agent may see with its whole history (GET /v1/snapshot),
        each page stored in one transaction while the next is fetched; then local leads it did
        not name leave the queue and the cursor moves to where the snapshot began, so the change
        feed goes on from there. False when the server has no snapshot (an older server).

        A failure midway leaves the cursor as it was: the next pull starts over, and the pages
        stored already are applied again harmlessly (older copies never replace newer ones)."""
        self._publish(snapshot_loaded=0, snapshot_total=None)
        with young_collections_only():
            return await self._load_snapshot(resync=resync)

    async def _load_snapshot(self, *, resync: bool) -> bool:
        limit = self._settings.snapshot_page_size
        present: set[str] = set()  # the leads the snapshot named
        try:
            try:
                body = await self._api.snapshot_body(None, limit)
            except Rejected as exc:
                if exc.status != 404:
                    raise
                log.warning("the server has no snapshot (%s): replaying its change feed", exc)
                self._snapshot_unsupported = True
                return False
            page: SnapshotPage = await in_thread(parse_snapshot_page, body)
            newest = page.newest
            if not self._blocks_unsupported:
                # Read after `newest`: a block added before it is in this list, one added
                # after it comes with the feed that follows from `newest`. (Before the first
                # page is stored: no lead is shown, and so callable, without the lists.)
                await self.download_contact_blocks()
            asked_for: str | None = None
            while True:
                if page.next_cursor is not None and (
                    not page.leads or page.next_cursor == asked_for
                ):
                    # a server (or proxy) that does not move on would loop here forever
                    raise SnapshotError(
                        f"the server's snapshot does not move on past {page.next_cursor!r}"
                    )
                following: asyncio.Future[bytes] | None = None
                if page.next_cursor is not None:
                    asked_for = page.next_cursor
                    following = asyncio.ensure_future(
                        self._api.snapshot_body(page.next_cursor, limit)
                    )
                write = self._stored(
                    # a first download's leads are new to the queue: derived from the page
                    self._store.repository.apply_snapshot_page,
                    page.leads,
                    with_reads=not resync,
                )
                result = await _while_fetching(write, following)
                present.update(_snapshot_ids(page.leads))
                self._applied(replace(result, more=True, whole=True))
                self._publish(snapshot_loaded=len(present), snapshot_total=page.total)
                if following is None:
                    break
                page = await in_thread(parse_snapshot_page, await following)
            finished = await self._stored(
                self._store.repository.finish_snapshot,
                present,
                str(newest),
                fresh_as_of=self._now(),
            )
        finally:
            self._publish(snapshot_loaded=None, snapshot_total=None)
        self._applied(finished)  # the last word of the download: the queue derives its leads
        if resync:
            self._notify(
                Notice(
                    NoticeKind.RESYNCED,
                    f"your queue was reloaded from the server ({len(present)})",
                )
            )
        return True

    async def download_contact_blocks(self) -> int:
        """Replace the local opt-out and do-not-call lists with the server's (GET
        /v1/contact-blocks, every page), marking them fresh. Returns how many entries."""
        fresh_as_of = self._now()
        entries: list[tuple[str, BlockKind, datetime]] = []
        cursor: int | None = 0
        try:
            while cursor is not None:
                page = await self._api.get_json(
                    "/v1/contact-blocks", {"cursor": cursor, "limit": 5000}
                )
                for block in page.get("blocks", []):
                    kind = block.get("kind")
                    if kind not in {k.value for k in BlockKind}:
                        continue  # a kind this version does not know
                    try:
                        at = datetime.fromisoformat(block["at"])
                    except (KeyError, TypeError, ValueError):
                        raise ChangeFeedError(f"contact block {block!r}: bad 'at'") from None
                    entries.append((str(block["address"]), BlockKind(kind), at))
                next_cursor = page.get("next_cursor")
                cursor = int(next_cursor) if next_cursor is not None else None
        except Rejected as exc:
            if exc.status != 404:
                raise
            log.warning("the server lists no contact blocks (%s): relying on the feed", exc)
            self._blocks_unsupported = True
            return 0
        touched = self._store.repository.replace_all_contact_blocks(entries, fresh_as_of)
        if touched:
            self._applied(AppliedChanges(leads=tuple(touched)))
        return len(entries)

    async def _check_rules(self) -> None:
        """Every `rules_interval`, fetch the server's rules if their version changed (see
        app.sync.rules). Never fails the pull: a problem is logged and tried again later."""
        mono = self._mono()
        checked = self._rules_checked
        if checked is not None and mono - checked < self._settings.rules_interval:
            return
        self._rules_checked = mono
        try:
            update = await refresh_rules(self._api, self._store, self._now())
        except Rejected as exc:
            log.info("the server's rules are not available (%s): keeping the local ones", exc)
            return
        except (NetworkError, ServerBusy) as exc:
            self._rules_checked = None  # try again with the next pull
            log.info("rules check failed: %s", exc)
            return
        self.rules_update = update
        if update.outcome == "updated":
            self._notify(
                Notice(NoticeKind.RULES_UPDATED, f"new rules from the server ({update.version})")
            )
        elif update.outcome == "refused" and self._rules_refused != update.message:
            self._rules_refused = update.message
            self._notify(Notice(NoticeKind.RULES_REFUSED, update.message))

    async def full_resync(self, newest: int) -> None:
        """Rebuild the local copy after the server refused the cursor (410): the snapshot, or
        from an older server without one its lead list (no histories), then the change feed
        from `newest` (what the server said was newest when it refused the cursor)."""
        if not self._snapshot_unsupported and await self.load_snapshot(resync=True):
            return
        self._publish(snapshot_loaded=0, snapshot_total=None)
        leads: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            while True:
                params: dict[str, Any] = {"limit": self._settings.page_size, "assigned": "all"}
                if cursor:
                    params["cursor"] = cursor
                page = await self._api.get_json("/v1/leads", params)
                leads.extend(page.get("leads", []))
                self._publish(snapshot_loaded=len(leads))
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            if not self._blocks_unsupported:
                await self.download_contact_blocks()
            result = await self._stored(self._store.repository.apply_snapshot_page, leads)
            finished = await self._stored(
                self._store.repository.finish_snapshot,
                set(_snapshot_ids(leads)),
                str(newest),
                fresh_as_of=self._now(),
            )
        finally:
            self._publish(snapshot_loaded=None, snapshot_total=None)
        self._applied(replace(result, removed=finished.removed))
        self._notify(
            Notice(NoticeKind.RESYNCED, f"your queue was reloaded from the server ({len(leads)})")
        )

    async def _pull_loop(self) -> None:
        while not self._stopping:
            # Cleared BEFORE the pull: a poke that arrives during it triggers another pull.
            self._wake_pull.clear()
            if self._state.connectivity is not Connectivity.SIGN_IN_EXPIRED:
                try:
                    await self.pull_once()
                except ApiError as exc:
                    log.info("pull failed: %s", exc)
                except Exception:
                    log.exception("pull failed")
            interval = self._settings.poll_interval
            if self._state.live and self._state.connectivity is Connectivity.ONLINE:
                interval = self._settings.live_safety_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_pull.wait(), timeout=interval)

    # Live updates

    async def _events_loop(self) -> None:
        failures = 0
        while not self._stopping:
            if self._state.connectivity is Connectivity.SIGN_IN_EXPIRED:
                await asyncio.sleep(0.5)
                continue
            try:
                async for seq in self._api.events(self._cursor()):
                    if not self._state.live:
                        self._publish(live=True)
                        self._wake_pull.set()  # pull after every (re)connect
                        self._wake_push.set()
                    failures = 0
                    if seq > self._cursor():
                        self._wake_pull.set()
            except SignInExpired as exc:
                self._expired(exc)
            except ApiError as exc:
                log.info("live updates interrupted: %s", exc)
            except Exception:
                log.exception("live updates failed")
            failures += 1
            if self._state.live:
                self._publish(live=False)
                self._wake_pull.set()  # no pokes now: the pull loop goes back to polling
            delay = backoff_delay(
                failures, self._settings.backoff_base, self._settings.backoff_max, self._rng
            )
            await asyncio.sleep(max(delay, self._settings.sse_min_reconnect))

    def check_wake(self, previous: tuple[float, float]) -> tuple[float, float]:
        """Compare (wall, monotonic) with `previous`; on a jump (the PC slept) pull and push at
        once. Returns the new pair."""
        wall, mono = self._wall(), self._mono()
        if (wall - previous[0]) - (mono - previous[1]) > self._settings.sleep_jump:
            log.info("the PC woke from sleep: syncing now")
            self.wakeups += 1
            self._wake_pull.set()
            self._wake_push.set()
        return wall, mono

    async def _sleep_watch(self) -> None:
        """After the PC wakes from sleep (wall clock jumps past the monotonic one), pull at once."""
        clocks = (self._wall(), self._mono())
        while not self._stopping:
            await asyncio.sleep(self._settings.sleep_check_interval)
            clocks = self.check_wake(clocks)


async def _while_fetching(write: Awaitable[T], following: asyncio.Future[Any] | None) -> T:
    """A page's store `write` while the next page is fetched; a failed write cancels that."""
    try:
        return await write
    except BaseException:
        if following is not None:
            following.cancel()
            with contextlib.suppress(BaseException):
                await following
        raise


def _snapshot_ids(entries: Sequence[Any]) -> list[str]:
    """The lead ids a snapshot page names (its entries were checked when stored)."""
    ids: list[str] = []
    for entry in entries:
        lead = entry.get("lead") if isinstance(entry, Mapping) else None
        if isinstance(lead, Mapping) and isinstance(lead.get("id"), str):
            ids.append(lead["id"])
    return ids
