"""The composition root of the workstation core: one place that builds store, API client, sync
engine, queue and use cases, and hands them to each other by constructor. No global singletons.

    signin = SignInService.open(config.server_url, ca_bundle=config.ca_bundle)
    account = await signin.resume() or await signin.sign_in(username, password)
    workstation = build_workstation(config, account, signin, load_rulebook())
    await workstation.start()           # loads the queue, starts push/pull/SSE
    ...                                  # workstation.actions.log_disposition(...), etc.
    await workstation.close()

Everything runs on the caller's asyncio loop (qasync's in the UI); listeners are called on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.domain.dealership import Dealership
from app.rulebook import Rulebook
from app.services.actions import DEFAULT_BLOCKLIST_MAX_AGE, ActionService
from app.services.conflicts import ConflictService
from app.services.queue import QueueService
from app.services.workqueue import WorkQueue
from app.store.db import LocalStore, open_user_store
from app.sync.api import ApiError, LeadApi
from app.sync.engine import Connectivity, Notice, SyncEngine, SyncSettings, SyncStatus
from app.sync.rules import cached_rulebook
from app.sync.signin import Account, SignInService

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 30.0

SESSION_ONLY_MESSAGE = (
    "Session-only mode: this PC has no secure password store, so nothing is kept after you "
    "close the program (your sign-in and the local copy of your leads are in memory only). "
    "Actions not yet sent to the server when you close are lost."
)


@dataclass(frozen=True)
class WorkstationConfig:
    server_url: str
    ca_bundle: str | None = None  # a private CA to trust (never: checks turned off)
    data_dir: Path | None = None  # default: the platform's user data folder
    sync: SyncSettings = field(default_factory=SyncSettings)
    api_timeout: float = 10.0
    blocklist_max_age: timedelta = DEFAULT_BLOCKLIST_MAX_AGE
    # Presence heartbeats (seconds; None: none). The server counts an agent offline — and
    # routes them nothing — after 90 s without one: the program sets HEARTBEAT_INTERVAL.
    heartbeat_interval: float | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests: fault injection at the edge


class Workstation:
    """The running core for one signed-in user. Build it with `build_workstation`."""

    def __init__(
        self,
        *,
        account: Account,
        signin: SignInService,
        store: LocalStore,
        api: LeadApi,
        engine: SyncEngine,
        queue: QueueService,
        actions: ActionService,
        conflicts: ConflictService,
        dealership: Dealership,
        heartbeat_interval: float | None = None,
    ) -> None:
        self.account = account
        self.signin = signin
        self.store = store
        self.api = api
        self.engine = engine
        self.queue = queue
        self.actions = actions
        self.conflicts = conflicts
        self.dealership = dealership
        self._started = False
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat: asyncio.Task[None] | None = None
        self._beat = asyncio.Event()
        self.heartbeats = 0  # heartbeats the server acknowledged (diagnostics, tests)

    # What the status bar shows

    @property
    def session_only(self) -> bool:
        return self.store.session_only

    @property
    def storage_message(self) -> str:
        """Say this to the user at start-up (e.g. in the status bar)."""
        if self.session_only:
            return SESSION_ONLY_MESSAGE
        if self.store.set_aside is not None:
            return (
                f"The local database was damaged; it was kept as {self.store.set_aside} and a "
                "fresh copy is being downloaded from the server. Actions that had not reached the "
                "server before the damage are in the kept file: tell IT."
            )
        return self.signin.storage_message

    @property
    def status(self) -> SyncStatus:
        return self.engine.state

    def subscribe_status(self, listener: Callable[[SyncStatus], None]) -> None:
        self.engine.subscribe(listener)

    def on_notice(self, listener: Callable[[Notice], None]) -> None:
        self.engine.on_notice(listener)

    def on_queue_changed(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        self.queue.on_changed(listener)

    def now(self) -> datetime:
        """The server's time (this PC's clock corrected by the measured offset): use it for
        countdowns so they are right when the PC clock is wrong."""
        return datetime.now(UTC) + self.api.clock_offset

    # Life cycle

    async def start(self) -> None:
        """Load the queue from the local store (works offline) and start syncing."""
        if self._started:
            return
        self.queue.load(background=True)  # the cached snapshot now, the derivation after
        self.engine.start()
        if self._heartbeat_interval:
            self.start_heartbeats(self._heartbeat_interval)
        self._started = True

    def start_heartbeats(self, interval: float = HEARTBEAT_INTERVAL) -> None:
        """Tell the server every `interval` seconds that this agent is here (one at once)."""
        self._heartbeat_interval = interval
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())

    # Presence: the server shows an agent offline (and routes them nothing) without heartbeats.

    def beat_now(self) -> None:
        """Send a heartbeat at once (e.g. right after a state change)."""
        self._beat.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            self._beat.clear()
            if self.engine.state.connectivity is not Connectivity.SIGN_IN_EXPIRED:
                try:
                    await self.api.send(
                        "POST", "/v1/presence/heartbeat", None, idempotency_key=None
                    )
                    self.heartbeats += 1
                except ApiError as exc:
                    log.info("heartbeat failed: %s", exc)
                except Exception:
                    log.exception("heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._beat.wait(), timeout=self._heartbeat_interval or HEARTBEAT_INTERVAL
                )

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self) -> None:
        """Stop syncing and close the store (the outbox stays for the next start)."""
        await self._stop_heartbeat()
        await self.queue.stop_loading()
        if self._started:
            await self.engine.stop()
            with contextlib.suppress(Exception):
                self.queue.save_snapshot()
        await self.api.aclose()
        self.store.close()
        self._started = False

    async def sign_in_again(self, password: str) -> Account:
        """After "sign-in expired": same user, new token; the outbox resumes where it was."""
        account = await self.signin.sign_in(self.account.username, password)
        self.account = account
        self.engine.signed_in_again(account.token)
        self.beat_now()
        return account

    async def sign_out(self) -> None:
        """Revoke and forget the token; unsent actions stay in the local store for next time."""
        await self._stop_heartbeat()
        await self.engine.stop()
        self._started = False
        await self.signin.sign_out(self.account)
        self.api.token = None

    @property
    def signed_in(self) -> bool:
        return self.engine.state.connectivity is not Connectivity.SIGN_IN_EXPIRED


def build_workstation(
    config: WorkstationConfig,
    account: Account,
    signin: SignInService,
    rules: Rulebook,
    *,
    dealership: Dealership | None = None,
) -> Workstation:
    """Wire everything for `account` (no network here: the store opens, nothing is sent)."""
    store = open_user_store(
        config.server_url,
        account.username,
        signin.secrets if signin.secure else None,
        data_dir=config.data_dir,
        set_aside_damaged=True,
    )
    try:
        # The server's rules (cadences, templates, calling rules…) as last downloaded and
        # validated win over the packaged copy: the desk and the server decide alike.
        rules = cached_rulebook(store) or rules
        api = LeadApi(
            signin.server_url,
            token=account.token,
            ca_bundle=config.ca_bundle,
            timeout=config.api_timeout,
            transport=config.transport,
        )
        saved = store.repository.sync_state()
        api.clock_offset = timedelta(seconds=saved.server_offset_s)
        engine = SyncEngine(api, store, settings=config.sync)
        dealership = dealership or Dealership(
            id=account.store_id,
            name=account.store_id,
            time_zone=rules.hours.time_zone,
            state="",
            postal_code="",
        )

        def clock() -> datetime:
            return datetime.now(UTC) + api.clock_offset

        agent_id = account.user_id if account.role == "agent" else None
        queue = QueueService(store, WorkQueue(rules, dealership), agent_id, clock)
        engine.on_applied(queue.applied)
        actions = ActionService(
            store,
            queue,
            rules,
            agent_id=account.user_id,
            clock=clock,
            outbox_changed=engine.outbox_changed,
            is_online=lambda: engine.state.connectivity is Connectivity.ONLINE,
            may_reach_server=lambda: (
                engine.state.connectivity in (Connectivity.ONLINE, Connectivity.SYNCING)
            ),
            api=api,
            blocklist_max_age=config.blocklist_max_age,
            fallback_zone=dealership.time_zone,
        )
        conflicts = ConflictService(
            store, outbox_changed=engine.outbox_changed, lead_changed=queue.refresh
        )
    except BaseException:
        store.close()
        raise
    return Workstation(
        account=account,
        signin=signin,
        store=store,
        api=api,
        engine=engine,
        queue=queue,
        actions=actions,
        conflicts=conflicts,
        dealership=dealership,
        heartbeat_interval=config.heartbeat_interval,
    )


async def open_workstation(
    config: WorkstationConfig,
    username: str,
    password: str,
    rules: Rulebook,
    *,
    signin: SignInService | None = None,
    dealership: Dealership | None = None,
) -> Workstation:
    """Sign in and start: the whole start-up in one call (the UI may do the steps itself)."""
    signin = signin or SignInService.open(
        config.server_url,
        ca_bundle=config.ca_bundle,
        timeout=config.api_timeout,
        transport=config.transport,
    )
    account = await signin.sign_in(username, password)
    workstation = build_workstation(config, account, signin, rules, dealership=dealership)
    try:
        await workstation.start()
    except (ApiError, Exception):
        await workstation.close()
        raise
    return workstation
