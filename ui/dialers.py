"""Dialers the UI can use until app/telephony lands: a tel: hand-off and a demo simulator.

Both satisfy `ui.ports.Dialer`; the real telephony backends plug in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QObject, QTimer, QUrl
from PySide6.QtGui import QDesktopServices

from app.domain.dispositions import AfterEvent
from ui.ports import CallEvent, CallPhase, Clock

# A tel: hand-off cannot see the call: a short one most likely rang out.
ANSWERED_AFTER_S = 25


class _Base:
    name = "base"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._listener: Callable[[CallEvent], None] = lambda _event: None
        self._call: tuple[str, str, datetime] | None = None  # lead, number, started

    def set_listener(self, on_event: Callable[[CallEvent], None]) -> None:
        self._listener = on_event

    def _emit(self, phase: CallPhase, outcome: AfterEvent | None = None, message: str = "") -> None:
        if self._call is None:
            return
        lead_id, number, _ = self._call
        self._listener(CallEvent(phase, lead_id, number, self._clock(), outcome, message))
        if phase is CallPhase.ENDED:
            self._call = None


class TelHandoffDialer(_Base):
    """Hands `tel:+1…` to the OS (softphone, phone link); the agent hangs up in the UI."""

    name = "tel"

    def __init__(
        self, clock: Clock, open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
    ) -> None:
        super().__init__(clock)
        self._open_url = open_url

    def dial(self, lead_id: str, number: str) -> None:
        self._call = (lead_id, number, self._clock())
        if not self._open_url(QUrl(f"tel:{number}")):
            self._emit(CallPhase.ENDED, AfterEvent.CALL_FAILED, "no program handles tel: links")
            return
        self._emit(CallPhase.DIALING, message="handed to your phone program")

    def hang_up(self) -> None:
        if self._call is None:
            return
        seconds = (self._clock() - self._call[2]).total_seconds()
        guess = AfterEvent.CALL_ANSWERED if seconds >= ANSWERED_AFTER_S else None
        self._emit(CallPhase.ENDED, guess or AfterEvent.CALL_UNANSWERED)


class SimulatedDialer(_Base):
    """The demo's phone: rings, then every other call is answered; unanswered ones ring out."""

    name = "simulated"

    def __init__(self, clock: Clock, parent: QObject | None = None, ring_ms: int = 2500) -> None:
        super().__init__(clock)
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._ring_done)
        self._ring_ms = ring_ms
        self._count = 0
        self._connected = False

    def dial(self, lead_id: str, number: str) -> None:
        self._call = (lead_id, number, self._clock())
        self._connected = False
        self._count += 1
        self._emit(CallPhase.RINGING, message="ringing (simulated)")
        self._timer.start(self._ring_ms)

    def _ring_done(self) -> None:
        if self._call is None:
            return
        if self._count % 2:
            self._connected = True
            self._emit(CallPhase.CONNECTED, message="answered (simulated)")
        else:
            self._emit(CallPhase.ENDED, AfterEvent.CALL_VOICEMAIL, "went to voicemail")

    def hang_up(self) -> None:
        self._timer.stop()
        if self._call is None:
            return
        outcome = AfterEvent.CALL_ANSWERED if self._connected else AfterEvent.CALL_UNANSWERED
        self._emit(CallPhase.ENDED, outcome)
