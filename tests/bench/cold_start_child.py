"""The program's start-up on a pre-filled encrypted store, timed from outside (see
test_workstation_live.py): the same steps as `ui.main.run_workstation` (saved sign-in resumed,
core built on the local store, queue loaded, window shown), then one JSON line on stdout with the
wall-clock time of the queue's first paint, the phases and the resident memory.

    python -m tests.bench.cold_start_child SERVER_URL DATA_DIR KEYRING_JSON
"""

from __future__ import annotations

import time

STARTED = time.time()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _keyring(entries: dict) -> object:
    """The saved sign-in and database key, in memory (this machine has no OS keyring)."""
    from keyring.backend import KeyringBackend

    class Saved(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            entries.pop((service, username), None)

    return Saved()


async def run(server_url: str, data_dir: Path, entries: dict[str, str], phases: dict) -> dict:
    from PySide6.QtCore import QEvent, QObject, QTimer

    from app.rulebook import load_rulebook
    from app.services.workstation import WorkstationConfig, build_workstation
    from app.sync.signin import SignInService
    from app.telephony.demo import DemoDialer
    from ui.live import LiveSession

    phases["imports"] = time.time()
    keyring = _keyring({tuple(k.split("\n", 1)): v for k, v in entries.items()})
    rules = load_rulebook()
    signin = SignInService.open(server_url, keyring_backend=keyring)
    account = await signin.resume("ana")
    assert account is not None, "the saved sign-in"
    phases["signed_in"] = time.time()
    workstation = build_workstation(
        WorkstationConfig(server_url, data_dir=data_dir), account, signin, rules
    )
    phases["store_opened"] = time.time()
    await workstation.start()
    phases["queue_loaded"] = time.time()
    session = LiveSession(workstation, rules, DemoDialer(seed=1))
    window = session.window
    window.resize(1500, 880)
    phases["window_built"] = time.time()
    painted: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and window.model.rowCount() and not painted.done():
                # after this paint event returns: the rows are on screen
                QTimer.singleShot(0, lambda: painted.done() or painted.set_result(time.time()))
            return False

    watcher = FirstPaint(window)
    window.table.viewport().installEventFilter(watcher)
    window.show()
    first_paint = await painted
    rows = window.model.rowCount()
    memory_at_paint = rss_mb()
    await asyncio.sleep(2.0)  # the first pull and a couple of ticks
    result = {
        "started": STARTED,
        "first_paint": first_paint,
        "phases": phases,
        "rows": rows,
        "leads": len(workstation.queue.work_queue),
        "rss_mb_at_paint": memory_at_paint,
        "rss_mb": max(memory_at_paint, rss_mb()),
    }
    window.close()
    await workstation.close()
    return result


def main() -> int:
    server_url, data_dir, keyring_json = sys.argv[1:4]
    import qasync
    from PySide6.QtWidgets import QApplication

    phases: dict[str, float] = {}
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # as ui.main: the coroutine closes the core first
    phases["qt"] = time.time()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    entries = json.loads(Path(keyring_json).read_text())
    with loop:
        result = loop.run_until_complete(run(server_url, Path(data_dir), entries, phases))
    print("BENCH " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
