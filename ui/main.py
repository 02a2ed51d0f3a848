"""`bdc-workstation`: the agent's desktop program.

    bdc-workstation [--server URL]      sign in (saved sign-in or the dialog) and work the queue
    bdc-workstation --demo              the same program against a lead API started in-process
                                        on loopback, seeded, with a simulator feeding it leads
    ... --screenshot PATH               render the main window (once its queue loaded) and exit
    bdc-workstation --manager [--demo]  the manager view: live floor, queue health, KPIs, calls

One copy per user session (ui/single_instance.py): a second start (a tel: link clicked while
the program runs) hands its link to the running window and exits.

The Qt loop runs asyncio (qasync): the core's coroutines and listeners share the Qt thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("bdc.ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdc-workstation", description="BDC Workstation: the live lead queue for BDC agents."
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start a seeded lead API in this process (loopback) with a simulator sending new "
        "leads and texts, sign in as a demo agent and open the workstation on it",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("BDC_SERVER_URL", ""),
        help="URL of the lead API to sync with (or set BDC_SERVER_URL; default: the settings)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="render the main window with its data to a PNG at PATH and exit",
    )
    parser.add_argument(
        "--manager",
        action="store_true",
        help="open the manager view (live floor board, queue health and reassignment, KPIs, "
        "call review); with --demo, signed in as the demo manager with simulated agents working",
    )
    parser.add_argument(
        "--leads", type=int, default=160, help="demo: how many leads to seed (all agents)"
    )
    parser.add_argument(
        "--remove-local-data",
        action="store_true",
        help="delete this user's cached leads, unsent work, settings and logs on this PC, and exit",
    )
    parser.add_argument(
        "link",
        nargs="?",
        default="",
        help="a tel: or callto: link (from the desktop) whose number to look up in the queue",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (window, keyring, encrypted store, rules) and exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.remove_local_data:
        return _remove_local_data()
    if args.self_test:
        from ui.self_test import run_self_test

        return run_self_test()
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import qasync
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("BDC Workstation")
    qt_app.setOrganizationName("BDC Workstation")
    qt_app.setQuitOnLastWindowClosed(False)  # the coroutine below closes the core first
    instance = None
    if args.screenshot is None and not args.manager:  # ui/single_instance.py: who takes part
        from ui.single_instance import EXIT_NOT_ANSWERING, Claim, SingleInstance, tell_not_answering

        instance = SingleInstance.for_workstation(demo=args.demo)
        claim = instance.claim(args.link)
        if claim is Claim.HANDED_OVER:
            return 0
        if claim is Claim.NOT_ANSWERING:
            tell_not_answering()
            return EXIT_NOT_ANSWERING
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:  # inside a test's qasync loop: it drives us
        raise RuntimeError("call run_workstation() from a running loop")
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return int(loop.run_until_complete(run_workstation(args, instance=instance)))
    finally:
        asyncio.set_event_loop(None)
        qt_app.setQuitOnLastWindowClosed(True)
        if instance is not None:
            instance.close()


async def run_workstation(args: argparse.Namespace, *, instance: Any = None) -> int:
    """The whole program on a running qasync loop: settings, sign-in, core, window, close.

    `instance`: the claimed `ui.single_instance.SingleInstance`; the links other starts hand
    over go to the window (before it exists: the latest is kept for it, and the dialog on
    screen is raised)."""
    links = LinkRouter(args.link)
    if instance is not None:
        instance.message_received.connect(links.received)
    if getattr(args, "manager", False):
        from ui.manager.app import run_manager

        return await run_manager(args)
    from PySide6.QtCore import QSettings, QUrl
    from PySide6.QtGui import QDesktopServices

    from app.rulebook import load_rulebook
    from app.services.workstation import (
        HEARTBEAT_INTERVAL,
        WorkstationConfig,
        build_workstation,
    )
    from app.settings import load_settings, user_path
    from app.sync.engine import SyncSettings
    from app.sync.signin import SignInError, SignInService
    from app.telephony.factory import build_dialer
    from ui.live import LiveSession, sign_in_interactively, wait_for_dialog
    from ui.theme import apply_theme

    screenshot: Path | None = args.screenshot
    interactive = screenshot is None
    loaded = load_settings()
    qsettings = QSettings() if interactive else None  # window layout only
    if interactive and not args.demo and loaded.user_file is None:
        from ui.dialogs import SettingsDialog

        dialog = SettingsDialog(loaded, user_path())
        await wait_for_dialog(dialog)
        loaded = load_settings()
    settings = loaded.settings
    if interactive:
        apply_theme(settings.theme)
    rules = load_rulebook()
    cleanup: list[Any] = []
    try:
        sync = SyncSettings(poll_interval=float(settings.poll_interval_s))
        if args.demo:
            from app.demo.generator import DEMO_STORE
            from app.demo.live import DemoKeyring, start_demo_server
            from app.demo.simulator import LeadSimulator
            from app.telephony.demo import DemoDialer

            folder = Path(tempfile.mkdtemp(prefix="bdc-demo-"))
            print(f"Starting the demo lead API with {args.leads} seeded leads …", flush=True)
            began = time.monotonic()
            demo = await _in_thread(lambda: start_demo_server(folder / "server", leads=args.leads))
            cleanup.append(demo.stop)
            print(
                f"Demo lead API at {demo.base_url} ready in {time.monotonic() - began:.1f} s; "
                f"signing in as '{demo.username}'.",
                flush=True,
            )
            signin = SignInService.open(demo.base_url, keyring_backend=DemoKeyring())
            account = await signin.sign_in(demo.username, demo.password)
            remember = True
            config = WorkstationConfig(
                demo.base_url,
                data_dir=folder / "workstation",
                sync=sync,
                heartbeat_interval=HEARTBEAT_INTERVAL,
            )
            dealership = DEMO_STORE
            dialer: Any = DemoDialer(seed=int(time.time()) % 1000)
            status_text = f"· demo lead API {demo.base_url} · simulated leads and texts"
            suffix = " (demo)"
        else:
            server_url = args.server or settings.server_url
            ca = settings.trusted_ca_file or None

            def open_signin(url: str) -> SignInService:
                return SignInService.open(url, ca_bundle=ca)

            if not interactive and not server_url:
                print("--screenshot needs --demo or a server", file=sys.stderr)
                return 2
            signed = await sign_in_interactively(server_url, open_signin=open_signin)
            if signed is None:
                return 1
            signin, account, remember = signed.signin, signed.account, signed.remember
            config = WorkstationConfig(
                signin.server_url, ca_bundle=ca, sync=sync, heartbeat_interval=HEARTBEAT_INTERVAL
            )
            dealership = None
            dialer = None  # built below: the server-side dialer needs the workstation's API
            status_text = f"· {signin.server_url}"
            suffix = ""
        workstation = build_workstation(config, account, signin, rules, dealership=dealership)
        cleanup.append(workstation.close)
        if dialer is None:
            dialer = build_dialer(
                settings,
                open_url=lambda url: QDesktopServices.openUrl(QUrl(url)),
                call_control=workstation.api,
            )
        # Server-side calls report their progress through the change feed (others ignore it).
        workstation.engine.on_entity("call", dialer.on_call_change)
        cleanup.append(dialer.close)
        if not remember:
            cleanup.append(lambda: signin.forget_token(account.username))
        await workstation.start()
        session = LiveSession(
            workstation,
            rules,
            dialer,
            dealership=dealership,
            settings=qsettings,
            sounds=interactive and settings.sounds,
            notifications=interactive and settings.notifications,
            status_text=status_text,
            title_suffix=suffix,
        )
        window = session.window
        window.settings_requested.connect(lambda: _open_settings(window, loaded))
        simulator = None
        if args.demo:
            simulator = LeadSimulator(demo.base_url, demo.api_key, webhook_token=demo.webhook_token)
            cleanup.append(simulator.aclose)
            if screenshot is None:
                stop = asyncio.Event()
                task = asyncio.ensure_future(simulator.run(stop))
                cleanup.append(lambda: _stop_task(stop, task))
        if screenshot is not None:
            return await _screenshot(window, workstation, screenshot, simulator)
        window.show()
        links.attach(window)
        if args.demo:
            print(
                f"BDC Workstation demo: {window.windowTitle()} — live queue, real sync; "
                "close the window to quit.",
                flush=True,
            )
        await _closed(window)
        links.closed()
        return 0
    except SignInError as exc:
        print(f"bdc-workstation: {exc}", file=sys.stderr)
        return 1
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                result = step()
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    await result


class LinkRouter:
    """Links for the window: the command line's, then those other starts hand over."""

    def __init__(self, link: str = "") -> None:
        self.pending = link
        self.window: Any = None
        self.closing = False

    def received(self, link: str) -> None:
        if self.closing:  # the agent closed the window: the core is closing, do not re-show
            log.info("a link arrived while closing: ignored")
            return
        if self.window is not None:
            self.window.bring_to_front()
            if link:
                self.window.show_link(link)
            return
        if link:
            self.pending = link
        from PySide6.QtWidgets import QApplication

        dialog = QApplication.activeModalWidget()  # the sign-in or settings dialog
        if dialog is not None:
            dialog.raise_()
            dialog.activateWindow()

    def closed(self) -> None:
        self.closing = True

    def attach(self, window: Any) -> None:
        self.window = window
        link, self.pending = self.pending, ""
        if link:
            window.show_link(link)


async def _in_thread(work: Any) -> Any:
    """`work()` in a plain daemon thread (not qasync's executor, whose QThreads outlive a test
    loop); the result comes back on the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=run, daemon=True, name="bdc-demo-start").start()
    return await future


async def _stop_task(stop: asyncio.Event, task: asyncio.Future[Any]) -> None:
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _open_settings(window: Any, loaded: Any) -> None:
    from app.settings import load_settings, user_path
    from ui.dialogs import SettingsDialog
    from ui.theme import apply_theme

    dialog = SettingsDialog(load_settings(), user_path(), window)
    dialog.finished.connect(lambda _code: apply_theme(dialog.settings.theme))
    window._settings_dialog = dialog
    dialog.open()


async def _closed(window: Any) -> None:
    """Until the agent closes the window."""
    from PySide6.QtCore import QEvent, QObject

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Watch(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Close and not done.done():
                done.set_result(None)
            return False

    watcher = Watch(window)
    window.installEventFilter(watcher)
    await done


async def _screenshot(window: Any, workstation: Any, path: Path, simulator: Any = None) -> int:
    """Render once the queue has loaded (and, in the demo, a new hot lead and a customer's
    text arrived through the simulator), then write the PNG."""
    window.resize(1500, 880)
    window.show()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = workstation.status
        if status.last_sync is not None and window.model.rowCount() > 0:
            break
        await asyncio.sleep(0.1)
    else:
        print("the queue did not load within 60 s", file=sys.stderr)
        return 1
    if simulator is not None:
        arrived = [event.lead_id for event in [await simulator.step() for _ in range(2)]]
        wanted = {lead_id for lead_id in arrived if lead_id}
        until = time.monotonic() + 10
        while time.monotonic() < until and not wanted <= set(window.model.lead_ids()):
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.2)  # a tick of the countdowns
    window.refresh(force=True)
    window.select_first()
    await asyncio.sleep(0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        print(f"could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    window.close()
    return 0


def _remove_local_data() -> int:
    from app.local_data import local_data_folders, remove_local_data

    folders = [folder for folder in local_data_folders() if folder.is_dir()]
    if not folders:
        print("No local data for this user on this PC.")
        return 0
    print("This deletes, for this user on this PC:")
    for folder in folders:
        print(f"  {folder}")
    print("Work not yet sent to the lead API will be lost.")
    if input("Type DELETE to continue: ").strip() != "DELETE":
        print("Nothing deleted.")
        return 1
    for folder in remove_local_data(tuple(folders)):
        print(f"deleted {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
