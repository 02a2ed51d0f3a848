"""`bdc-workstation`: the agent's desktop program."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdc-workstation", description="BDC Workstation: the live lead queue for BDC agents."
    )
    parser.add_argument(
        "--demo", action="store_true", help="open on generated demo data for a demo dealership"
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("BDC_SERVER_URL", ""),
        help="URL of the lead API to sync with (or set BDC_SERVER_URL)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="render the main window with its data to a PNG at PATH and exit",
    )
    parser.add_argument("--leads", type=int, default=300, help="demo: how many leads to generate")
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
    if not args.demo:
        print(
            "bdc-workstation: signing in to a lead API arrives with the workstation-core issue; "
            "run 'bdc-workstation --demo' (or 'make demo') to open the queue on demo data.",
            file=sys.stderr,
        )
        return 2

    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from ui.composition import build_demo_window
    from ui.dialogs import SettingsDialog
    from ui.theme import apply_theme

    if QApplication.instance() is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("BDC Workstation")
    qt_app.setOrganizationName("BDC Workstation")
    settings = None if args.screenshot is not None else QSettings()
    if settings is not None:
        if not settings.value("first_run_done", False):
            SettingsDialog(settings).exec()
        apply_theme(str(settings.value("theme", "system")))
    sounds = settings is not None and str(settings.value("sounds", "true")).lower() == "true"
    window = build_demo_window(lead_count=args.leads, settings=settings, sounds=sounds)
    if args.screenshot is not None:
        return _screenshot(window, args.screenshot)
    window.show()
    print(
        f"BDC Workstation demo: {window.windowTitle()} — {args.leads} generated leads, "
        "live countdowns; close the window to quit."
    )
    return int(qt_app.exec())


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


def _screenshot(window, path: Path) -> int:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    window.resize(1500, 880)
    window.show()
    for _ in range(5):
        QApplication.processEvents()
    window.select_first()
    QApplication.processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        print(f"could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
