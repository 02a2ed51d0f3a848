"""The window on the real path: a running `app.services.workstation.Workstation` wired to the
main window (queue, actions, sync status, notices, conflicts, sign-in expiry), plus the start-up
steps the program and the tests share: sign in (saved token or the dialog) and open the core.

Everything runs on the qasync loop: the core's listeners are called on the Qt thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

from app.domain.dealership import Dealership
from app.rulebook import Rulebook
from app.services.conflicts import Choice, PendingConflict
from app.services.workstation import Workstation
from app.sync.engine import Notice, NoticeKind
from app.sync.signin import Account, SignInError, SignInService
from app.telephony.model import Dialer
from ui import asyncs
from ui.content import LeadContent
from ui.disposition_bar import PickTime
from ui.main_window import MainWindow
from ui.ports import SignInRequest, SignInResult

if TYPE_CHECKING:
    from ui.dialogs import SignInDialog

log = logging.getLogger("bdc.ui")

FREEZE_CHECK_MS = 2_000


def freeze_heap() -> None:
    """Collect once, then move every object alive out of the collector's reach (gc.freeze).
    The loaded queue is long-lived: at 50,000 leads a full collection walking it took 435 ms
    on the GUI thread — during a disposition, measured — and 18 ms once frozen. Objects freed
    by reference counting are still freed; only cycles among frozen objects stay."""
    gc.collect()
    gc.freeze()


class LiveSession:
    """One signed-in agent's window over the core."""

    def __init__(
        self,
        workstation: Workstation,
        rules: Rulebook,
        dialer: Dialer,
        *,
        dealership: Dealership | None = None,
        settings: QSettings | None = None,
        sounds: bool = False,
        notifications: bool = True,
        pick_time: PickTime | None = None,
        monotonic: Callable[[], float] | None = None,
        status_text: str = "",
        title_suffix: str = "",
    ) -> None:
        self.workstation = workstation
        self.dialer = dialer
        account = workstation.account
        store = dealership or workstation.dealership
        content = LeadContent(
            rules.templates, rules.scripts, store, account.display_name, store.phone
        )
        extra: dict[str, Any] = {"monotonic": monotonic} if monotonic is not None else {}
        self.window = MainWindow(
            workstation.queue.work_queue,
            workstation.actions,
            content,
            rules.dispositions,
            workstation.now,
            dialer=dialer,
            store_zone=ZoneInfo(store.time_zone),
            title=f"BDC Workstation — {account.display_name} · {store.name}{title_suffix}",
            status_text=status_text,
            settings=settings,
            sounds=sounds,
            pick_time=pick_time,
            sync_status=workstation.status,
            agent_id=account.user_id,
            named_changes=True,  # wired below: workstation.on_queue_changed
            **extra,
        )
        self.window.notifier.enabled = notifications
        self._dialogs: list[QWidget] = []  # open non-modal prompts (strong references)
        self._asking_password = False
        workstation.subscribe_status(self.window.set_sync_state)
        workstation.on_notice(self._notice)
        workstation.on_queue_changed(self.window.queue_changed)
        self.window.sign_in_requested.connect(self.ask_password)
        if workstation.session_only:
            self.window.set_standing_notice(f"⚠ <b>{escape(workstation.storage_message)}</b>")
        self.window.refresh(force=True)
        if workstation.conflicts.pending():
            QTimer.singleShot(0, self.ask_conflicts)
        # Once the queue is loaded and synced, its objects are long-lived: out of the collector.
        self._heap_frozen = False
        self._freeze_check = QTimer(self.window)
        self._freeze_check.setInterval(FREEZE_CHECK_MS)
        self._freeze_check.timeout.connect(self._freeze_when_settled)
        self._freeze_check.start()

    def _freeze_when_settled(self) -> None:
        queue = self.workstation.queue
        if queue.loading or queue.refreshing or self.workstation.status.last_sync is None:
            return
        self._freeze_check.stop()
        freeze_heap()
        self._heap_frozen = True

    # Notices arrive inside the engine's tasks: anything modal waits for the Qt loop.

    def _notice(self, notice: Notice) -> None:
        if notice.kind is NoticeKind.LEAD_REMOVED and self.window.first_load:
            return  # history replayed by the first download, not news
        self.window.show_notice(_notice_text(notice))
        if notice.kind is NoticeKind.CONFLICT:
            QTimer.singleShot(0, self.ask_conflicts)

    def ask_conflicts(self) -> None:
        asked = {getattr(d, "conflict_id", None) for d in self._dialogs}
        for conflict in self.workstation.conflicts.pending():
            if conflict.id not in asked:
                self._ask_conflict(conflict)

    def _ask_conflict(self, conflict: PendingConflict) -> None:
        box = QMessageBox(self.window)
        box.setObjectName("conflict_prompt")
        box.setWindowTitle("Changed on the server")
        name = self._lead_name(conflict.lead_id)
        box.setText(
            f"<b>{escape(name)}</b>: {escape(conflict.prompt)}<br><br>"
            f"Yours: <b>{escape(_short(conflict.mine))}</b><br>"
            f"Theirs: <b>{escape(_short(conflict.theirs))}</b>"
        )
        keep = box.addButton("Keep mine", QMessageBox.ButtonRole.AcceptRole)
        take = box.addButton("Take theirs", QMessageBox.ButtonRole.RejectRole)
        box.conflict_id = conflict.id  # type: ignore[attr-defined]
        self._dialogs.append(box)

        def chosen(button: Any) -> None:
            choice = Choice.KEEP_MINE if button is keep else Choice.TAKE_THEIRS
            if button not in (keep, take):
                return
            asyncs.run(
                self.workstation.conflicts.resolve(conflict.id, choice),
                lambda _r: self.window.show_notice(f"{name}: {choice.value.replace('_', ' ')}"),
                lambda error: self.window.show_notice(f"Could not resolve: {error}"),
            )

        box.buttonClicked.connect(chosen)
        box.finished.connect(lambda _code: self._dialogs.remove(box))
        box.open()

    def _lead_name(self, lead_id: str) -> str:
        lead = self.workstation.store.repository.get_lead(lead_id)
        return lead.person.full_name if lead is not None else "A lead"

    def ask_password(self) -> None:
        """Sign-in expired: the same user's password again; the outbox waits meanwhile."""
        if self._asking_password:
            return
        self._asking_password = True
        dialog = QInputDialog(self.window)
        dialog.setObjectName("password_again")
        dialog.setWindowTitle("Sign in again")
        dialog.setLabelText(
            f"Your sign-in expired. Password for {self.workstation.account.username} "
            "(nothing you did is lost):"
        )
        dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
        self._dialogs.append(dialog)

        def done(code: int) -> None:
            self._dialogs.remove(dialog)
            self._asking_password = False
            if code != QDialog.DialogCode.Accepted:
                return
            asyncs.run(
                self.workstation.sign_in_again(dialog.textValue()),
                lambda _a: self.window.show_notice("Signed in again: sending your saved work"),
                self._sign_in_again_failed,
            )

        dialog.finished.connect(done)
        dialog.open()

    def _sign_in_again_failed(self, error: BaseException) -> None:
        self.window.show_notice(f"Sign-in failed: {error}")
        QTimer.singleShot(0, self.ask_password)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "…"


def _notice_text(notice: Notice) -> str:
    text = notice.message[:1].upper() + notice.message[1:]
    return text


# --------------------------------------------------------------------------- start-up


@dataclass
class SignedIn:
    signin: SignInService
    account: Account
    remember: bool = True


async def wait_for_dialog(dialog: QDialog) -> int:
    """Show `dialog` without a nested Qt loop (safe inside a coroutine) and await its answer."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(code: int) -> None:
        if not future.done():
            future.set_result(code)

    dialog.finished.connect(finished)
    dialog.open()
    return await future


async def sign_in_interactively(
    server_url: str,
    *,
    open_signin: Callable[[str], SignInService],
    parent: QWidget | None = None,
    on_dialog: Callable[[SignInDialog], None] | None = None,
) -> SignedIn | None:
    """The saved sign-in if it still works, else the sign-in dialog (server, user, password,
    remember me). None when the user cancels."""
    signin: SignInService | None = None
    if server_url:
        try:
            signin = open_signin(server_url)
        except SignInError as exc:
            log.info("server URL refused: %s", exc)
        else:
            account = await signin.resume()
            if account is not None:
                return SignedIn(signin, account)
    chosen: dict[str, SignedIn] = {}

    async def attempt(request: SignInRequest) -> SignInResult:
        nonlocal signin
        try:
            if signin is None or signin.server_url.rstrip("/") != request.server_url.rstrip("/"):
                signin = open_signin(request.server_url)
            account = await signin.sign_in(request.username, request.password)
        except SignInError as exc:
            return SignInResult(False, str(exc))
        chosen["it"] = SignedIn(signin, account, request.remember)
        return SignInResult(True, agent_name=account.display_name)

    last = signin.last_user() if signin is not None else None
    from ui.dialogs import SignInDialog  # only when the saved sign-in did not work

    dialog = SignInDialog(attempt, parent, server_url=server_url, username=last or "")
    dialog.remember.setChecked(True)
    if signin is not None and not signin.secure:
        dialog.remember.setChecked(False)
        dialog.remember.setEnabled(False)
        dialog.remember.setToolTip(signin.storage_message)
    if on_dialog is not None:
        on_dialog(dialog)
    code = await wait_for_dialog(dialog)
    if code != QDialog.DialogCode.Accepted or "it" not in chosen:
        return None
    return chosen["it"]
