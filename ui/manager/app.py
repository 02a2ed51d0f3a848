"""`bdc-workstation --manager`: the same program, opened on the manager view.

With `--demo` it starts the seeded lead API in-process, signs in as the demo manager `morgan` and
keeps the floor moving: the lead simulator sends leads and texts, the floor simulator makes the
demo agents go available, call their leads (logging calls and dispositions), wrap up and pause —
all through the real API, so the board moves exactly as it would on a real floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEMO_MANAGER = "morgan"
DEMO_AGENTS = ("ana", "ben", "chloe", "dev")


async def run_manager(args: argparse.Namespace) -> int:
    from app.services.manager import ManagerService
    from ui.main import _closed, _in_thread, _stop_task
    from ui.manager.window import ManagerWindow

    screenshot: Path | None = args.screenshot
    cleanup: list[Any] = []
    try:
        if args.demo:
            from app.demo.live import DemoKeyring, start_demo_server
            from app.demo.simulator import FloorSimulator, LeadSimulator
            from app.sync.signin import SignInService

            folder = Path(tempfile.mkdtemp(prefix="bdc-demo-"))
            print(f"Starting the demo lead API with {args.leads} seeded leads …", flush=True)
            demo = await _in_thread(lambda: start_demo_server(folder / "server", leads=args.leads))
            cleanup.append(demo.stop)
            signin = SignInService.open(demo.base_url, keyring_backend=DemoKeyring())
            account = await signin.sign_in(DEMO_MANAGER, demo.password)
            leads = LeadSimulator(demo.base_url, demo.api_key, webhook_token=demo.webhook_token)
            cleanup.append(leads.aclose)
            floor = FloorSimulator(demo.base_url, DEMO_AGENTS, demo.password)
            cleanup.append(floor.aclose)
            print("Simulated agents are signing in and working their leads …", flush=True)
            await floor.warm_up()
            for _ in range(3):  # fresh leads, some about to breach
                await leads.step()
            suffix = " (demo)"
        else:
            from app.sync.signin import SignInService
            from ui.live import sign_in_interactively

            if not args.server and screenshot is not None:
                print("--screenshot needs --demo or a server", file=sys.stderr)
                return 2

            signed = await sign_in_interactively(args.server, open_signin=SignInService.open)
            if signed is None:
                return 1
            signin, account = signed.signin, signed.account
            suffix = ""
        if account.role not in ("manager", "admin"):
            print(f"{account.username} is not a manager: the manager view needs that role")
            return 1
        api = signin.new_api(account.token)
        cleanup.append(api.aclose)
        service = ManagerService(api)
        cleanup.append(service.close)
        await service.start()
        window = ManagerWindow(
            service, title=f"BDC Workstation — Manager · {account.display_name}{suffix}"
        )
        if args.demo and screenshot is None:
            stop = asyncio.Event()
            tasks = [asyncio.ensure_future(floor.run(stop)), asyncio.ensure_future(leads.run(stop))]
            for task in tasks:
                cleanup.append(lambda task=task: _stop_task(stop, task))
        if screenshot is not None:
            return await _screenshot(window, service, screenshot)
        window.resize(1500, 900)
        window.show()
        await _closed(window)
        return 0
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                result = step()
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    await result


async def _screenshot(window: Any, service: Any, path: Path) -> int:
    """The Floor tab on top with the KPIs and a call review beside it, in one picture."""
    window.resize(1500, 900)
    window.show()
    deadline = time.monotonic() + 30
    while service.state.board is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if service.state.board is None:
        print("the floor did not load within 30 s", file=sys.stderr)
        return 1
    await service.refresh()
    await asyncio.sleep(1.1)  # a tick of the clocks
    window.tick()
    path.parent.mkdir(parents=True, exist_ok=True)
    window.tabs.setCurrentIndex(0)
    await asyncio.sleep(0.5)
    ok = window.grab().save(str(path))
    # The other tabs next to it, for the README (same folder, suffixed names).
    report = await service.kpis("week", "agent")
    window.kpis.period.setCurrentIndex(1)
    window.kpis.show_report(report)
    window.tabs.setCurrentWidget(window.kpis)
    await asyncio.sleep(0.5)
    ok = window.grab().save(str(path.with_name(path.stem + "-kpis.png"))) and ok
    calls = await service.calls("today")
    window.calls.show_calls(calls)
    window.tabs.setCurrentWidget(window.calls)
    await asyncio.sleep(0.5)
    ok = window.grab().save(str(path.with_name(path.stem + "-calls.png"))) and ok
    window.close()
    if not ok:
        print(f"could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
