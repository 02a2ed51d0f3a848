"""`bdc-workstation --demo --screenshot PATH`: the in-process lead API, the simulator, sign-in
and the real core, rendered once the queue has loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytestqt.qtbot import QtBot

from ui.main import build_parser, run_workstation


def test_demo_screenshot_renders_the_live_queue(qtbot: QtBot, tmp_path: Path) -> None:
    target = tmp_path / "queue.png"
    args = build_parser().parse_args(["--demo", "--leads", "30", "--screenshot", str(target)])
    future = asyncio.ensure_future(run_workstation(args))
    qtbot.waitUntil(future.done, timeout=45_000)
    assert future.result() == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
