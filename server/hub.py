"""The change feed at run time: reading it, pruning it, and waking SSE streams when it grows.

Reading (`read_changes`): changes with seq > cursor for the principal's store, in seq order. The
cursor is safe because server.changes.record makes change-writing transactions commit in seq order
(PostgreSQL advisory lock; SQLite serializes writers), so once seq N is visible every seq below it
is too. Agents see changes whose owner (agent_id) is them, plus ownerless changes about the pool
(POOL_ENTITIES: leads, activities, messages), the store-wide ones (STORE_WIDE_ENTITIES: opt-outs
and do-not-call entries, leads leaving the pool) and their own presence; other ownerless changes
(alerts, other agents' presence) are for managers. The cursor still moves past rows an agent may not
see, so a page can be empty with has_more true. 410 (CursorGone) when the cursor is older than what
retention kept (prune_changes leaves a marker row) or newer than anything written (a rebuilt
database): the client resyncs.

Waking (`ChangeHub`, one per app, started by the app's lifespan): the newest seq per store, and
waiters (SSE streams) that wake when it grows. The process learns of changes three ways:
(a) its own commits — a post-commit hook on the app's sessionmaker passes the (store, seq) pairs
    that record() inserted, at once;
(b) PostgreSQL: a background thread LISTENs on server.changes.NOTIFY_CHANNEL, so another API
    process's commit wakes it within milliseconds (plus a refresh every 5 s as a safety net);
(c) SQLite: the same thread polls the newest seq every Settings.change_poll_interval.
The thread also prunes old change and idempotency rows every Settings.prune_interval.

Serving: SSE streams never end by themselves and uvicorn waits for open responses before it shuts
down, so run the app with `serve()` / `UvicornServer`, whose exit first ends every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, object_session

from server.auth import Principal, Role
from server.changes import NOTIFY_CHANNEL
from server.db import ChangeRow, is_postgres, transaction, utcnow
from server.settings import Settings

log = logging.getLogger(__name__)

# Ownerless changes agents see: the unassigned pool's leads and their history.
POOL_ENTITIES = frozenset({"lead", "activity", "message", "lead_removed"})
# Ownerless changes every staff member of the store gets: opt-outs and do-not-call entries
# (a customer who opted out must be blocked on every PC), and leads leaving the pool.
STORE_WIDE_ENTITIES = frozenset({"contact_block", "pool_left"})
# The row marking how far the log was pruned (store "": nobody's).
PRUNED = "pruned"
_HUB_KEY = "change_hub"
_PENDING_KEY = "change_hub_pending"
_SAFETY_REFRESH_S = 5.0


# --------------------------------------------------------------------------- reading


def visible_to(principal: Principal, row: ChangeRow) -> bool:
    if row.store_id != principal.store_id:
        return False
    if principal.role in (Role.MANAGER, Role.ADMIN):
        return True
    if principal.role is not Role.AGENT:
        return False
    if row.agent_id == principal.id:
        return True
    if row.agent_id is None:
        if row.entity in STORE_WIDE_ENTITIES:
            return True
        if row.entity == "presence":
            return row.entity_id == principal.id
        return row.entity in POOL_ENTITIES
    return False


class CursorGone(Exception):
    """The cursor cannot be continued: the client must resync (HTTP 410)."""

    def __init__(self, message: str, *, oldest: int | None, newest: int) -> None:
        super().__init__(message)
        self.oldest = oldest
        self.newest = newest


@dataclass(frozen=True, slots=True)
class ChangePage:
    changes: list[dict[str, Any]]
    next_cursor: int
    has_more: bool
    newest: int  # the store's newest seq when read


def change_to_dict(row: ChangeRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "data": row.data,
        "at": row.at.isoformat(),
    }


def pruned_through(session: Session) -> int | None:
    """The seq of the prune marker (cursors below it get 410), None when nothing was pruned."""
    # The marker, when there is one, is the log's first row (prune_changes deletes all below
    # it): reading the first row by key is O(1), where max(seq) WHERE entity = 'pruned'
    # scanned the whole log — 0.5–0.8 s per page at 580,000 changes.
    first = session.execute(
        select(ChangeRow.seq, ChangeRow.entity).order_by(ChangeRow.seq).limit(1)
    ).first()
    return first.seq if first is not None and first.entity == PRUNED else None


def resume_seq(session: Session, store_id: str) -> int:
    """The cursor to follow `store_id`'s changes from now on (a snapshot's `newest`): the
    store's newest seq, but never below the prune marker, which read_changes answers with 410
    (retention may have dropped every change of a quiet store). 0 on an empty log."""
    newest = session.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.store_id == store_id))
    return max(newest or 0, pruned_through(session) or 0)


def read_changes(session: Session, principal: Principal, since: int, limit: int) -> ChangePage:
    """One page of the principal's changes after `since`. Raises CursorGone."""
    rows = session.scalars(
        select(ChangeRow)
        .where(ChangeRow.store_id == principal.store_id, ChangeRow.seq > since)
        .order_by(ChangeRow.seq)
        .limit(limit + 1)
    ).all()
    # Checked AFTER reading the page: a prune between the two statements then shows as a
    # 410 instead of silently skipped rows.
    horizon = pruned_through(session)
    newest = session.scalar(select(func.max(ChangeRow.seq))) or 0
    if horizon is not None and since < horizon:
        raise CursorGone(
            f"cursor {since} is older than the change log keeps (changes up to {horizon} were "
            "pruned); resync: reload your leads (GET /v1/snapshot), then follow changes from its "
            "'newest'",
            oldest=horizon + 1,
            newest=newest,
        )
    if since > newest:
        raise CursorGone(
            f"cursor {since} is ahead of the change log (newest: {newest}); the server's "
            "database was replaced: resync (GET /v1/snapshot), then follow changes from its "
            "'newest'",
            oldest=horizon + 1 if horizon is not None else None,
            newest=newest,
        )
    has_more = len(rows) > limit
    rows = rows[:limit]
    store_newest = session.scalar(
        select(func.max(ChangeRow.seq)).where(ChangeRow.store_id == principal.store_id)
    )
    return ChangePage(
        changes=[change_to_dict(r) for r in rows if visible_to(principal, r)],
        next_cursor=rows[-1].seq if rows else since,
        has_more=has_more,
        newest=max(store_newest or 0, rows[-1].seq if rows else 0),
    )


def prune_changes(session: Session, retention: timedelta, now: datetime) -> int:
    """Drop changes older than `retention`; returns how many left the feed.

    Always a prefix of the log, never the newest row (SQLite would reuse its seq). The last
    dropped row stays as an invisible marker (entity PRUNED, no store): cursors before it get
    410, while a gap left by a rolled-back transaction never causes a false 410."""
    newest = session.scalar(select(func.max(ChangeRow.seq)))
    cutoff = session.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.at < now - retention))
    if newest is None or cutoff is None:
        return 0
    cutoff = min(cutoff, newest - 1)
    marker = session.get(ChangeRow, cutoff)
    if marker is None or marker.entity == PRUNED:
        return 0
    dropped = session.execute(
        delete(ChangeRow).where(ChangeRow.seq < cutoff, ChangeRow.entity != PRUNED)
    )
    session.execute(delete(ChangeRow).where(ChangeRow.seq < cutoff))
    marker.entity = PRUNED
    marker.store_id = ""
    marker.entity_id = ""
    marker.agent_id = None
    marker.data = {"pruned_through": cutoff}
    session.flush()
    return int(getattr(dropped, "rowcount", 0) or 0) + 1


# --------------------------------------------------------------------------- the hub


@event.listens_for(ChangeRow, "after_insert")
def _remember_change(_mapper: Any, _connection: Any, target: ChangeRow) -> None:
    """Note each change a hub-connected session writes; published when the session commits."""
    session = object_session(target)
    if session is not None and session.info.get(_HUB_KEY) is not None:
        session.info.setdefault(_PENDING_KEY, []).append((target.store_id, target.seq))


class ChangeHub:
    """Newest change seq per store, and waiters woken when it grows. Methods without the
    `_threadsafe` suffix run on the event loop the hub was started on."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._sessions = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._newest: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark = 0  # newest seq the watcher has seen (not moved by in-process publishes)
        self._poll_engine: Engine | None = None
        self.listening = threading.Event()  # set while a PostgreSQL LISTEN is active

    # ---- lifecycle

    async def start(self, sessions: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()  # bound to this loop (an app may be started again)
        self._sessions = sessions
        self._closing = False
        self._stop.clear()
        if is_postgres(self._engine):
            self._poll_engine = self._engine
        else:
            # Plain pysqlite reads run outside a transaction (WAL snapshot per statement), unlike
            # the app engine's BEGIN IMMEDIATE, so polling never takes the write lock.
            self._poll_engine = create_engine(
                self._engine.url, connect_args={"timeout": 30, "check_same_thread": False}
            )
        self._mark = await anyio.to_thread.run_sync(self._global_newest)
        self._thread = threading.Thread(target=self._watch, name="change-hub-watcher", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._close()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join, 10.0)
        if self._poll_engine is not None and self._poll_engine is not self._engine:
            self._poll_engine.dispose()
        self._poll_engine = None
        self._loop = None

    @property
    def closing(self) -> bool:
        return self._closing

    def close_streams_threadsafe(self) -> None:
        """End every open stream (server shutdown); callable from any thread."""
        self._call_soon(self._close)

    def _close(self) -> None:
        self._closing = True
        self._wake_all()

    # ---- publishing

    def publish_threadsafe(self, items: Iterable[tuple[str, int]]) -> None:
        self._call_soon(self._publish, list(items))

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close meanwhile: then nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _publish(self, items: list[tuple[str, int]]) -> None:
        grew = False
        for store_id, seq in items:
            if seq > self._newest.get(store_id, 0):
                self._newest[store_id] = seq
                grew = True
        if grew:
            self._wake_all()

    def _wake_all(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    # ---- waiting

    def current(self, store_id: str) -> int:
        return self._newest.get(store_id, 0)

    async def newest(self, store_id: str) -> int:
        if store_id not in self._newest:
            seq = await anyio.to_thread.run_sync(self._store_newest, store_id)
            self._newest[store_id] = max(seq, self._newest.get(store_id, 0))
        return self._newest[store_id]

    async def wait_newer(self, store_id: str, after: int, timeout: float) -> int | None:
        """The store's newest seq once it exceeds `after`; None on timeout or when closing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._closing:
            current = self._newest.get(store_id, 0)
            if current > after:
                return current
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return None
        return None

    # ---- the watcher thread

    def _global_newest(self) -> int:
        assert self._poll_engine is not None
        with self._poll_engine.connect() as connection:
            return int(connection.scalar(select(func.max(ChangeRow.seq))) or 0)

    def _store_newest(self, store_id: str) -> int:
        engine = self._poll_engine or self._engine
        with engine.connect() as connection:
            query = select(func.max(ChangeRow.seq)).where(ChangeRow.store_id == store_id)
            return int(connection.scalar(query) or 0)

    def refresh(self) -> None:
        """Publish every store whose changes passed the watcher's mark (any process's)."""
        assert self._poll_engine is not None
        with self._poll_engine.connect() as connection:
            # Grouped here, not in SQL: SQLite answers "GROUP BY store_id" by scanning the whole
            # store_id index (20 ms a poll at 580,000 changes, ~4% of a core while idle); the
            # plain range is a seek on the primary key.
            rows = connection.execute(
                select(ChangeRow.store_id, ChangeRow.seq).where(ChangeRow.seq > self._mark)
            ).all()
        newest: dict[str, int] = {}
        for store, seq in rows:
            newest[str(store)] = max(newest.get(str(store), 0), int(seq))
        if newest:
            items = list(newest.items())
            self._mark = max(self._mark, *(seq for _, seq in items))
            self.publish_threadsafe(items)

    def _watch(self) -> None:
        settings = self._settings
        poll_s = settings.change_poll_interval.total_seconds()
        prune_every = settings.prune_interval.total_seconds()
        next_prune = time.monotonic() + prune_every
        postgres = is_postgres(self._engine)
        listener: Any = None
        next_refresh = 0.0
        while not self._stop.is_set():
            try:
                if postgres and listener is None:
                    listener = self._listen()
                    self.refresh()  # whatever was committed while not listening
                if listener is not None:
                    notified = any(True for _ in listener.notifies(timeout=poll_s, stop_after=1))
                    if notified or time.monotonic() >= next_refresh:
                        self.refresh()
                        next_refresh = time.monotonic() + _SAFETY_REFRESH_S
                else:
                    self.refresh()
                    self._stop.wait(poll_s)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + prune_every
                    self.prune()
            except Exception as exc:  # keep watching: a database hiccup must not end pokes
                log.warning("change watcher: %s; retrying in 1 s", exc)
                listener = _close_quietly(listener)
                self.listening.clear()
                self._stop.wait(1.0)
        _close_quietly(listener)
        self.listening.clear()

    def _listen(self) -> Any:
        import psycopg

        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        connection = psycopg.connect(*args, **kwargs, autocommit=True)
        try:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            connection.close()
            raise
        self.listening.set()
        return connection

    def prune(self) -> None:
        from server import idempotency

        if self._sessions is None:
            return
        now = utcnow()
        with transaction(self._sessions) as session:
            changes = prune_changes(session, self._settings.change_retention, now)
            keys = idempotency.prune(session, self._settings.idempotency_retention, now)
        if changes or keys:
            log.info("pruned %d changes and %d idempotency records", changes, keys)

    # ---- the post-commit hook

    def after_commit(self, session: Session) -> None:
        pending = session.info.pop(_PENDING_KEY, None)
        if pending:
            self.publish_threadsafe(pending)

    @staticmethod
    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING_KEY, None)


def _close_quietly(connection: Any) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):  # already broken; nothing to save
            connection.close()


# --------------------------------------------------------------------------- SSE


def poke(seq: int) -> str:
    return f"id: {seq}\nevent: poke\ndata: {json.dumps({'seq': seq})}\n\n"


async def event_stream(
    hub: ChangeHub,
    store_id: str,
    settings: Settings,
    still_allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """The SSE body: a retry hint and a poke with the newest seq at once (a reconnecting client,
    whatever its Last-Event-ID, learns where the feed is), then a poke per burst of changes and a
    `: ping` comment after each quiet Settings.sse_heartbeat. Ends when the hub closes or the
    principal's sign-in stops being valid."""
    loop = asyncio.get_running_loop()
    heartbeat = settings.sse_heartbeat.total_seconds()
    coalesce = settings.sse_coalesce.total_seconds()
    recheck = settings.sse_recheck.total_seconds()
    last = await hub.newest(store_id)
    yield f"retry: {int(settings.sse_retry.total_seconds() * 1000)}\n" + poke(last)
    next_check = loop.time() + recheck
    poked_at = loop.time()
    while not hub.closing:
        seq = await hub.wait_newer(store_id, last, heartbeat)
        if hub.closing:
            break
        if seq is None:
            yield ": ping\n\n"
        else:
            # The first change after a quiet spell is poked at once (a new lead is on the floor
            # as soon as it is stored); the rest of a burst waits out the interval and gets one
            # poke for all of it: at most one poke per `coalesce`.
            wait = poked_at + coalesce - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last = hub.current(store_id)
            poked_at = loop.time()
            yield poke(last)
        if loop.time() >= next_check:
            next_check = loop.time() + recheck
            if not await still_allowed():
                yield 'event: signed_out\ndata: {"detail": "sign in again"}\n\n'
                break


# --------------------------------------------------------------------------- wiring


def hub_of(app: Any) -> ChangeHub:
    hub = getattr(app.state, _HUB_KEY, None)
    if not isinstance(hub, ChangeHub):
        raise RuntimeError("the change hub is not installed on this app")
    return hub


def install(api: FastAPI) -> None:
    """Give `api` a ChangeHub started and stopped with the app's lifespan."""
    hub = ChangeHub(api.state.engine, api.state.settings)
    setattr(api.state, _HUB_KEY, hub)
    sessions = api.state.sessions
    info = dict(sessions.kw.get("info") or {})
    info[_HUB_KEY] = True
    sessions.configure(info=info)
    event.listen(sessions, "after_commit", hub.after_commit)
    event.listen(sessions, "after_rollback", hub.after_rollback)

    async def start(app: FastAPI) -> None:
        await hub.start(app.state.sessions)

    async def stop(_app: FastAPI) -> None:
        await hub.stop()

    api.state.on_start.append(start)
    api.state.on_stop.insert(0, stop)


class UvicornServer(uvicorn.Server):
    """uvicorn.Server whose exit ends the app's SSE streams first, so shutdown is prompt."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._close_streams()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Ask a server running in another thread to shut down."""
        self._close_streams()
        self.should_exit = True

    def _close_streams(self) -> None:
        state = getattr(self.config.app, "state", None)
        hub = getattr(state, _HUB_KEY, None)
        if isinstance(hub, ChangeHub):
            hub.close_streams_threadsafe()


def serve(api: FastAPI, host: str, port: int, **options: Any) -> None:
    """Run `api` with uvicorn so that Ctrl+C / SIGTERM also ends open SSE streams."""
    options.setdefault("timeout_graceful_shutdown", 10)
    UvicornServer(uvicorn.Config(api, host=host, port=port, **options)).run()
