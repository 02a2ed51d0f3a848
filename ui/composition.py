"""The composition root for the desktop program: builds services and windows by constructor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from app.demo.generator import DEMO_AGENTS, DEMO_STORE, demo_leads
from app.rulebook import load_rulebook
from app.services.workqueue import WorkQueue
from ui.main_window import MainWindow


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_demo_window(
    *, lead_count: int = 300, clock: Callable[[], datetime] = _utc_now
) -> MainWindow:
    """The main window over generated demo leads for the demo agent's queue."""
    rules = load_rulebook()
    now = clock()
    agent = DEMO_AGENTS[0]
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load(demo_leads(now, lead_count), now)
    return MainWindow(
        queue,
        clock,
        title=f"BDC Workstation — {agent.name} · {DEMO_STORE.name} (demo)",
        status_text=(
            f"Demo: {len(queue)} leads generated in-process for {DEMO_STORE.name}; "
            "not connected to a lead API yet"
        ),
    )
