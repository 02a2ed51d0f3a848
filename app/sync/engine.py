"""The sync engine: pushes the outbox, pulls the change feed, listens for SSE pokes.

Offline-first: the agent's actions are already durable in the local store (the outbox) before
the engine sees them. The engine only moves them to the server, in order, exactly once (each
carries its Idempotency-Key), and applies what the server changed. It never blocks the UI: it
runs as asyncio tasks whose strong references it keeps, and publishes its state to listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.store.db import LocalStore
from app.store.repository import AppliedChanges
from app.sync.api import (
    ApiError,
    ChangesPage,
    LeadApi,
    NetworkError,
    Rejected,
    ResyncNeeded,
    ServerBusy,
    SignInExpired,
)

log = logging.getLogger(__name__)

__all__ = ["Connectivity", "SyncEngine", "SyncSettings", "SyncState"]


class Connectivity(StrEnum):
    ONLINE = "online"
    SYNCING = "syncing"
    OFFLINE = "offline"
    SIGN_IN_EXPIRED = "sign_in_expired"


@dataclass(frozen=True, slots=True)
class SyncState:
    """What the status bar shows."""

    connectivity: Connectivity = Connectivity.OFFLINE
    pending: int = 0  # outbox items not yet confirmed by the server
    failed: int = 0  # outbox items the server refused (kept, shown to the agent)
    last_sync: datetime | None = None
    last_error: str = ""
    live: bool = False  # SSE connected (else polling)
    resync_progress: float | None = None  # 0..1 during a full resync


@dataclass(frozen=True)
class SyncSettings:
    poll_interval: float = 5.0  # seconds between pulls when SSE is unavailable
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    sleep_jump: float = (
        20.0  # a wall-clock jump this much beyond the monotonic clock = the PC slept
    )
    page_size: int = 500
    sse_failures_before_polling: int = 3


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
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._store = store
        self._settings = settings or SyncSettings()
        self._now = now
        self._rng = rng or random.Random()
        self._listeners: list[Callable[[SyncState], None]] = []
        self._change_listeners: list[Callable[[AppliedChanges], None]] = []
        self._state = SyncState()
        self._wake_push = asyncio.Event()
        self._wake_pull = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # Observation

    @property
    def state(self) -> SyncState:
        return self._state

    def subscribe(self, listener: Callable[[SyncState], None]) -> None:
        self._listeners.append(listener)
        listener(self._state)

    def on_applied(self, listener: Callable[[AppliedChanges], None]) -> None:
        """Called after each page of server changes is stored (the queue refreshes those leads)."""
        self._change_listeners.append(listener)

    def _cursor(self) -> int:
        return int(self._store.repository.cursor() or 0)

    def _applied(self, applied: AppliedChanges) -> None:
        for listener in list(self._change_listeners):
            try:
                listener(applied)
            except Exception:
                log.exception("change listener failed")

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

    # Control

    def start(self) -> None:
        """Start the push, pull and live-update loops (keeps strong references to them)."""
        self._stopping = False
        for loop in (self._push_loop, self._pull_loop, self._events_loop, self._sleep_watch):
            task = asyncio.ensure_future(loop())
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sync task failed", exc_info=task.exception())

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
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
        sent = 0
        while not self._stopping:
            outbox = self._store.outbox
            item = outbox.next_due(self._now())
            if item is None:
                break
            outbox.mark_sending(item.id)
            try:
                reply = await self._api.send(
                    item.method, item.path, item.body, idempotency_key=item.idempotency_key
                )
            except Rejected as exc:
                # The server refused it for a reason: keep it, show why, carry on with the rest.
                outbox.mark_failed(item.id, exc.status, str(exc))
                self._publish(last_error=f"refused by the server: {exc}")
                continue
            except (NetworkError, ServerBusy) as exc:
                delay = backoff_delay(
                    item.attempts,
                    self._settings.backoff_base,
                    self._settings.backoff_max,
                    self._rng,
                )
                if isinstance(exc, ServerBusy) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                outbox.mark_retry(item.id, str(exc), self._now() + timedelta(seconds=delay))
                offline = isinstance(exc, NetworkError)
                self._publish(
                    connectivity=Connectivity.OFFLINE if offline else self._state.connectivity,
                    last_error=str(exc),
                )
                break
            except SignInExpired as exc:
                outbox.mark_retry(item.id, str(exc), self._now())
                self._publish(connectivity=Connectivity.SIGN_IN_EXPIRED, last_error=str(exc))
                break
            outbox.mark_done(item.id, reply.body)
            sent += 1
            self._publish(connectivity=Connectivity.ONLINE, last_error="")
        return sent

    async def _push_loop(self) -> None:
        while not self._stopping:
            if self._state.connectivity is not Connectivity.SIGN_IN_EXPIRED:
                with contextlib.suppress(ApiError):
                    await self.push_once()
            self._wake_push.clear()
            # Wake on a new action, or when the earliest retry may be due.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_push.wait(), timeout=1.0)

    # Pull

    async def pull_once(self) -> int:
        """Pull every page of changes since the cursor; each page is applied atomically."""
        applied = 0
        self._publish(connectivity=Connectivity.SYNCING)
        try:
            while True:
                page: ChangesPage = await self._api.changes(
                    self._cursor(), self._settings.page_size
                )
                result = self._store.repository.apply_changes(
                    [
                        {"seq": c.seq, "entity": c.entity, "entity_id": c.entity_id, "data": c.data}
                        for c in page.changes
                    ],
                    str(page.next_cursor),
                    fresh_as_of=self._now(),
                )
                self._applied(result)
                applied += len(page.changes)
                if not page.has_more:
                    break
        except ResyncNeeded as exc:
            await self.full_resync(exc.newest or 0)
        except NetworkError as exc:
            self._publish(connectivity=Connectivity.OFFLINE, last_error=str(exc))
            raise
        except SignInExpired as exc:
            self._publish(connectivity=Connectivity.SIGN_IN_EXPIRED, last_error=str(exc))
            raise
        now = self._now()
        self._store.repository.record_sync_success(now, self._api.clock_offset.total_seconds())
        self._publish(connectivity=Connectivity.ONLINE, last_sync=now, last_error="")
        return applied

    async def full_resync(self, newest: int) -> None:
        """Rebuild the local copy from the server's lead list, with progress, then resume the
        change feed from `newest` (what the server said was newest when it refused the cursor)."""
        self._publish(resync_progress=0.0)
        leads: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = await self._api.get_json("/v1/leads", params)
            leads.extend(page.get("leads", []))
            total = max(int(page.get("total", len(leads)) or 1), 1)
            self._publish(resync_progress=min(len(leads) / total, 0.99))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        self._applied(
            self._store.repository.apply_snapshot(leads, str(newest), fresh_as_of=self._now())
        )
        self._publish(resync_progress=None)

    async def _pull_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(ApiError):
                await self.pull_once()
            self._wake_pull.clear()
            interval = self._settings.poll_interval
            if self._state.live:
                interval = 60.0  # SSE pokes drive pulls; a slow safety net remains
            if self._state.connectivity is Connectivity.OFFLINE:
                interval = min(interval, self._settings.poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_pull.wait(), timeout=interval)

    # Live updates

    async def _events_loop(self) -> None:
        failures = 0
        while not self._stopping:
            if self._state.connectivity is Connectivity.SIGN_IN_EXPIRED:
                await asyncio.sleep(1.0)
                continue
            try:
                async for seq in self._api.events(self._cursor()):
                    if not self._state.live:
                        self._publish(live=True)
                        self._wake_pull.set()  # pull after every (re)connect
                    failures = 0
                    if seq > self._cursor():
                        self._wake_pull.set()
            except SignInExpired as exc:
                self._publish(connectivity=Connectivity.SIGN_IN_EXPIRED, last_error=str(exc))
            except ApiError as exc:
                log.info("live updates interrupted: %s", exc)
            failures += 1
            self._publish(live=False)
            delay = backoff_delay(
                failures, self._settings.backoff_base, self._settings.backoff_max, self._rng
            )
            await asyncio.sleep(max(delay, 0.2))

    async def _sleep_watch(self) -> None:
        """After the PC wakes from sleep (wall clock jumps past the monotonic one), pull at once."""
        wall, mono = time.time(), time.monotonic()
        while not self._stopping:
            await asyncio.sleep(5.0)
            new_wall, new_mono = time.time(), time.monotonic()
            if (new_wall - wall) - (new_mono - mono) > self._settings.sleep_jump:
                self._wake_pull.set()
                self._wake_push.set()
            wall, mono = new_wall, new_mono
