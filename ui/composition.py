"""The composition root for the desktop program: builds services and windows by constructor.

Injection points (see ui/ports.py): `LeadSource` (reads), `LeadActions` (writes), `Dialer`,
`SignIn`, and `MainWindow.set_sync_state(SyncView)` for app.sync. Today the demo wires the
in-process WorkQueue and `DemoBackend`; the real services replace those two arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QSettings

from app.demo.generator import DEMO_AGENTS, DEMO_STORE, demo_leads
from app.rulebook import load_rulebook
from app.services.workqueue import WorkQueue
from ui.content import LeadContent
from ui.demo_backend import DemoBackend
from ui.dialers import SimulatedDialer, TelHandoffDialer
from ui.disposition_bar import PickTime
from ui.main_window import MainWindow
from ui.ports import Connectivity, Dialer, SignInRequest, SignInResult, SyncView


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _demo_sign_in(request: SignInRequest) -> SignInResult:
    return SignInResult(False, "The demo runs without a lead API; nothing to sign in to.")


def build_demo_window(
    *,
    lead_count: int = 300,
    clock: Callable[[], datetime] = _utc_now,
    settings: QSettings | None = None,
    dialer: Dialer | None = None,
    pick_time: PickTime | None = None,
    sounds: bool = False,
    monotonic: Callable[[], float] | None = None,
) -> MainWindow:
    """The main window over generated demo leads for the demo agent's queue."""
    rules = load_rulebook()
    now = clock()
    agent = DEMO_AGENTS[0]
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load(demo_leads(now, lead_count), now)
    backend = DemoBackend(queue, rules, agent.id)
    content = LeadContent(rules.templates, rules.scripts, DEMO_STORE, agent.name, agent.phone)
    if dialer is None:
        choice = str(settings.value("dialer", "simulated")) if settings else "simulated"
        dialer = TelHandoffDialer(clock) if choice == "tel" else SimulatedDialer(clock)
    extra = {"monotonic": monotonic} if monotonic is not None else {}
    window = MainWindow(
        queue,
        backend,
        content,
        rules.dispositions,
        clock,
        dialer=dialer,
        store_zone=DEMO_STORE.zone,
        title=f"BDC Workstation — {agent.name} · {DEMO_STORE.name} (demo)",
        status_text=f"· {len(queue)} demo leads for {DEMO_STORE.name}",
        settings=settings,
        sounds=sounds,
        pick_time=pick_time,
        sign_in=_demo_sign_in,
        sync_view=SyncView(Connectivity.LOCAL),
        **extra,
    )
    window.backend = backend  # type: ignore[attr-defined]
    window.queue = queue  # type: ignore[attr-defined]
    return window
