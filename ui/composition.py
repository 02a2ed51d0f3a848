"""Composition of the in-process preview: the main window over generated leads held in memory
(`ui.demo_backend.DemoBackend`), no lead API. The widget tests use it (a fixed clock, instant
actions); `bdc-workstation --demo` runs the real core against an in-process lead API instead
(ui/live.py builds that window)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QSettings

from app.demo.generator import DEMO_AGENTS, DEMO_STORE, demo_leads
from app.rulebook import load_rulebook
from app.services.workqueue import WorkQueue
from app.telephony.demo import DemoDialer
from app.telephony.model import Dialer
from ui.content import LeadContent
from ui.demo_backend import DemoBackend
from ui.disposition_bar import PickTime
from ui.main_window import MainWindow


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_preview_window(
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
    backend = DemoBackend(queue, rules, agent.id, clock)
    content = LeadContent(rules.templates, rules.scripts, DEMO_STORE, agent.name, agent.phone)
    extra = {"monotonic": monotonic} if monotonic is not None else {}
    window = MainWindow(
        queue,
        backend,
        content,
        rules.dispositions,
        clock,
        dialer=dialer or DemoDialer(clock=clock),
        store_zone=DEMO_STORE.zone,
        title=f"BDC Workstation — {agent.name} · {DEMO_STORE.name} (preview)",
        status_text=f"· {len(queue)} generated leads for {DEMO_STORE.name}",
        settings=settings,
        sounds=sounds,
        pick_time=pick_time,
        sync_status=None,
        agent_id=agent.id,
        **extra,
    )
    window.backend = backend  # type: ignore[attr-defined]
    window.queue = queue  # type: ignore[attr-defined]
    return window
