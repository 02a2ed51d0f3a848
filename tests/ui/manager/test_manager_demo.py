"""`bdc-workstation --demo --manager --screenshot PATH`: the demo floor with simulated agents,
signed in as the demo manager, rendered to PNGs (the floor, the KPIs, call review)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytestqt.qtbot import QtBot

from ui.main import build_parser, run_workstation


def test_manager_demo_screenshot_renders_the_floor(qtbot: QtBot, tmp_path: Path) -> None:
    target = tmp_path / "manager.png"
    args = build_parser().parse_args(
        ["--demo", "--manager", "--leads", "30", "--screenshot", str(target)]
    )
    future = asyncio.ensure_future(run_workstation(args))
    qtbot.waitUntil(future.done, timeout=50_000)
    assert future.result() == 0
    for path in (target, tmp_path / "manager-kpis.png", tmp_path / "manager-calls.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
