"""One running workstation per user session: a second start hands its link to the first.

The program is the desktop's tel:/callto: handler, so clicking a phone link while it runs
starts it again. Without this, that second copy signed in again and opened the same encrypted
local store a second time. Now `ui.main.main()` claims the instance first
(`SingleInstance.claim`):

- nobody holds it: this process becomes the instance. It holds a `QLockFile` (the authority:
  a lock left by a crashed process, whose PID is gone, is taken over) and listens on a
  `QLocalServer`, after `QLocalServer.removeServer` removed a socket file a crashed instance
  left behind (Unix; Windows pipes vanish with their process);
- a live instance holds it: this process connects, sends the link (or an empty "show
  yourself") as one JSON line, waits for the acknowledgement and exits 0. The running
  instance raises its window and looks the number up (`MainWindow.show_link`); it never
  dials, the agent does (calling rules are checked at that click);
- the instance holds it but does not acknowledge within `HAND_OVER_TIMEOUT_S` (its loop is
  blocked, or it is stuck before listening): this process says "BDC Workstation is already
  running but not answering" and exits `EXIT_NOT_ANSWERING`. It does not start anyway: two
  copies on one store is the bug this module fixes.

A link handed over while the sign-in dialog is up waits for the window (the dialog is raised);
one arriving after the agent closed the window (the core is still closing) is acknowledged and
dropped rather than re-showing a closing window (`ui.main.LinkRouter`).

Names. The instance is per OS user and per data folder (a hash of the user name and the
folder the local store lives in, `store_folder()`), so another user on the same PC (terminal
server) or a copy run with another data folder (XDG_DATA_HOME) is a separate instance. On
Unix the socket and lock live in $XDG_RUNTIME_DIR when set (private to the user), else in
Qt's temp folder; both are created for the owner only. On Windows the lock is in the user's
temp folder and the pipe name carries the hash.

Who takes part: the agent's workstation (`bdc-workstation [link]`) and the demo
(`--demo`), which uses its own name ("demo" in the hash): a demo never receives a link meant
for the real session, and a second `--demo` raises the running demo instead of starting a
second demo server. Not taking part: `--self-test`, `--screenshot`, `--remove-local-data`
(they return before, or do not open a session window), `--manager` (a separate view that
does not open the agent's local store and has nothing to do with a tel: link), and tests and
benches that build windows directly without `main()`.
"""

from __future__ import annotations

import contextlib
import enum
import getpass
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs
from PySide6.QtCore import QDir, QLockFile, QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("bdc.ui.single_instance")

HAND_OVER_TIMEOUT_S = 3.0  # connect + send + acknowledgement, as the agent waits for it
EXIT_NOT_ANSWERING = 3
MAX_MESSAGE_BYTES = 16 * 1024
STEP_MS = 20
# The same folder app.store.db opens the store in (APP_DIR_NAME there; not imported: the
# second start hands over before loading SQLAlchemy). tests/ui/test_single_instance.py checks.
STORE_DIR_NAME = "bdc-workstation"
NOT_ANSWERING_TEXT = (
    "BDC Workstation is already running but not answering.\n\n"
    "Wait a moment and try again. If it stays stuck, close it (or end it in the Task "
    "Manager) and start it again; work not yet sent is kept."
)


class Claim(enum.Enum):
    PRIMARY = "primary"  # this process is the instance: go on starting
    HANDED_OVER = "handed over"  # a running instance took the link: exit 0
    NOT_ANSWERING = "not answering"  # an instance holds the lock but did not answer


def store_folder() -> Path:
    return Path(platformdirs.user_data_dir(STORE_DIR_NAME, appauthor=False))


def instance_name(*, demo: bool = False, data_dir: Path | None = None) -> str:
    """The name for this OS user and data folder (and mode)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment: the home folder still differs
        user = str(Path.home())
    folder = str((data_dir or store_folder()).expanduser().absolute())
    key = "\0".join((user, folder, "demo" if demo else "workstation"))
    return "bdc-workstation-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def default_folder() -> Path:
    """Where the lock (and, on Unix, the socket) go."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "") if sys.platform != "win32" else ""
    if runtime and Path(runtime).is_dir():
        return Path(runtime)
    return Path(QDir.tempPath())


def encode(link: str) -> bytes:
    return json.dumps({"v": 1, "link": link}).encode() + b"\n"


def decode(line: bytes) -> str | None:
    """The link in a message ("" to just show the window); None for a malformed one."""
    try:
        message = json.loads(line.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    link = message.get("link") if isinstance(message, dict) else None
    return link if isinstance(link, str) else None


class SingleInstance(QObject):
    """Claim the instance (`claim`); as the instance, `message_received(link)` on each
    hand-over ("" = just show yourself). `close()` (or process exit) gives it up."""

    message_received = Signal(str)

    def __init__(
        self,
        name: str,
        *,
        folder: Path | None = None,
        timeout_s: float = HAND_OVER_TIMEOUT_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.folder = folder or default_folder()
        self.timeout_s = timeout_s
        # Unix: a full path, so the socket sits next to the lock (in the private runtime
        # folder); Windows: a pipe name.
        self.server_name = name if sys.platform == "win32" else str(self.folder / name)
        self._lock = QLockFile(str(self.folder / f"{name}.lock"))
        self._lock.setStaleLockTime(0)  # held for the whole session: stale only if its PID died
        self._server: QLocalServer | None = None
        self._clients: set[QLocalSocket] = set()

    @classmethod
    def for_workstation(cls, *, demo: bool = False) -> SingleInstance:
        return cls(instance_name(demo=demo))

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def claim(self, link: str = "") -> Claim:
        """Become the instance, or hand `link` to the running one (blocking, at most
        `timeout_s`)."""
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
        if self._lock.tryLock(0):
            self._listen()
            return Claim.PRIMARY
        if self._lock.error() == QLockFile.LockError.LockFailedError:
            # Held by a live process: it listens (or is about to: wait for it).
            if hand_over(self.server_name, link, self.timeout_s, wait_for_server=True):
                return Claim.HANDED_OVER
            return Claim.NOT_ANSWERING
        # The lock cannot be written here (permissions, read-only temp): the socket alone.
        log.warning(
            "cannot create %s (%s): single instance by socket only", self.folder, self._lock.error()
        )
        if hand_over(self.server_name, link, self.timeout_s, wait_for_server=False):
            return Claim.HANDED_OVER
        self._listen()
        return Claim.PRIMARY

    def _listen(self) -> None:
        QLocalServer.removeServer(self.server_name)  # a socket file left by a crashed instance
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._accept)
        if not server.listen(self.server_name):
            # Still the only instance (the lock says so); later starts say "not answering".
            log.warning("cannot listen on %s: %s", self.server_name, server.errorString())
            return
        self._server = server

    def _accept(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            if socket is None:
                break
            self._clients.add(socket)
            buffer = bytearray()
            timer = QTimer(socket)
            timer.setSingleShot(True)
            timer.timeout.connect(
                lambda socket=socket: socket.abort()
            )  # a client that never finishes its line
            timer.start(int(self.timeout_s * 1000) + 1000)

            def read(socket: QLocalSocket = socket, buffer: bytearray = buffer) -> None:
                buffer.extend(bytes(socket.readAll().data()))
                if b"\n" not in buffer:
                    if len(buffer) > MAX_MESSAGE_BYTES:
                        socket.abort()
                    return
                link = decode(bytes(buffer.split(b"\n", 1)[0]))
                socket.readyRead.disconnect()
                socket.write(b'{"ok": true}\n' if link is not None else b'{"ok": false}\n')
                socket.flush()
                socket.disconnectFromServer()
                if link is not None:
                    self.message_received.emit(link)

            def gone(socket: QLocalSocket = socket) -> None:
                self._clients.discard(socket)
                socket.deleteLater()

            socket.readyRead.connect(read)
            socket.disconnected.connect(gone)
            if socket.bytesAvailable():
                read()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for socket in list(self._clients):
            socket.abort()
        self._clients.clear()
        if self._lock.isLocked():
            self._lock.unlock()


def hand_over(server_name: str, link: str, timeout_s: float, *, wait_for_server: bool) -> bool:
    """Send `link` to the instance at `server_name` and wait for its acknowledgement
    (blocking: the second start has no loop of its own yet). `wait_for_server`: retry
    connecting until the timeout (the instance may be between its lock and its listen)."""
    deadline = time.monotonic() + timeout_s

    def left_ms() -> int:
        return max(0, int((deadline - time.monotonic()) * 1000))

    def wait(step: Callable[[int], bool]) -> bool:
        """Qt's blocking waits, in short steps: PySide6 keeps the GIL while it waits, and in
        the tests the instance answering runs in this process."""
        while True:
            if step(min(STEP_MS, max(1, left_ms()))):
                return True
            if left_ms() == 0:
                return False
            time.sleep(0.002)

    _allow_foreground()
    socket = QLocalSocket()
    try:
        while True:
            socket.connectToServer(server_name)
            if wait(socket.waitForConnected):
                break
            socket.abort()
            if not wait_for_server or left_ms() == 0:
                return False
            time.sleep(0.05)
        socket.write(encode(link))
        while socket.bytesToWrite() > 0:
            if not wait(socket.waitForBytesWritten):
                return False
        answer = bytearray()
        while b"\n" not in answer:
            ready = wait(socket.waitForReadyRead)
            answer.extend(bytes(socket.readAll().data()))  # also the answer before a close
            if not ready and b"\n" not in answer:
                return False
        try:
            return bool(json.loads(bytes(answer.split(b"\n", 1)[0]).decode()).get("ok"))
        except (UnicodeDecodeError, ValueError, AttributeError):
            return False
    finally:
        socket.abort()


def _allow_foreground() -> None:
    """Windows only lets the foreground process (this one: the agent just clicked) hand the
    foreground to another: allow the running instance to activate its window."""
    if sys.platform == "win32":
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.windll.user32.AllowSetForegroundWindow(-1)  # type: ignore[attr-defined]


def tell_not_answering() -> None:
    """Say so on stderr and, when a window can be shown, in a message box (the program is
    usually started by a tel: click, without a console)."""
    print(f"bdc-workstation: {NOT_ANSWERING_TEXT.splitlines()[0]}", file=sys.stderr)
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.warning(None, "BDC Workstation", NOT_ANSWERING_TEXT)
