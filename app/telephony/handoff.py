"""Hand-off: give the number to whatever program the PC opens `tel:` (or `sip:`, `callto:`) links
with — the agent's softphone. Nothing comes back, so the call's end is the agent's disposition:
`finish(call_id, at)` (or `hang_up`) closes it, and its length is dial time to disposition time.

The "open a URL" function is injected: the UI passes one wrapping QDesktopServices.openUrl
(`lambda url: QDesktopServices.openUrl(QUrl(url))`); without one, `system_url_opener` uses the
operating system's own opener. It returns False when no program handles the link.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from app.telephony.model import (
    CallDialing,
    CallEnded,
    CallHandle,
    CallInProgress,
    Clock,
    DialerUnavailable,
    DialRequest,
    EndCause,
    EventHub,
    Listener,
    TelephonyError,
    utc_now,
)

SCHEMES = ("tel", "sip", "callto")
UrlOpener = Callable[[str], bool]


def dial_url(number: str, scheme: str = "tel", sip_domain: str = "") -> str:
    """The link for `number` (E.164): tel:+13125550123, sip:+13125550123@pbx.example (or
    sip:+13125550123 when no domain is set: the softphone adds its account's), callto:+1312..."""
    if scheme not in SCHEMES:
        raise TelephonyError(f"unknown dial link scheme {scheme!r} (tel, sip or callto)")
    user = quote(number, safe="+")
    if scheme == "sip" and sip_domain:
        return f"sip:{user}@{sip_domain}"
    return f"{scheme}:{user}"


def system_url_opener(url: str) -> bool:
    """Open `url` with the operating system's handler for its scheme."""
    try:
        if sys.platform == "win32":
            os.startfile(url)  # type: ignore[attr-defined]
            return True
        command = ["open", url] if sys.platform == "darwin" else ["xdg-open", url]
        result = subprocess.run(command, check=False, timeout=15, capture_output=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class HandoffDialer:
    name = "handoff"
    reports_state = False
    records_calls = False  # the services log the call from its events

    def __init__(
        self,
        open_url: UrlOpener | None = None,
        *,
        scheme: str = "tel",
        sip_domain: str = "",
        clock: Clock = utc_now,
    ) -> None:
        dial_url("+10000000000", scheme, sip_domain)  # validates the scheme now, not at a click
        self._open = open_url or system_url_opener
        self.scheme = scheme
        self.sip_domain = sip_domain
        self._clock = clock
        self._hub = EventHub()
        self._active: CallHandle | None = None

    @property
    def active_call(self) -> CallHandle | None:
        return self._active

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._hub.subscribe(listener)

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        """Server-side calls only: this backend's calls do not come through the sync feed."""

    async def dial(self, request: DialRequest) -> CallHandle:
        if self._active is not None:
            raise CallInProgress("a call is already open: log its outcome first")
        url = dial_url(request.number, self.scheme, self.sip_domain)
        try:
            opened = self._open(url)
        except Exception as exc:
            raise DialerUnavailable(f"could not hand {url} to the softphone: {exc}") from exc
        if opened is False:
            raise DialerUnavailable(
                f"no program on this PC opens {self.scheme}: links — ask IT to make the "
                "softphone the default handler (see docs/telephony.md)"
            )
        started = self._clock()
        handle = CallHandle(request.call_id, request, started, self.name)
        self._active = handle
        self._hub.emit(
            CallDialing(request.call_id, started, request.number, request.lead_id, self.name)
        )
        return handle

    def finish(self, call_id: str, at: datetime) -> None:
        """The agent logged the outcome at `at`: the call ends there (its length is dial time to
        `at`; whether anyone answered is for the disposition to say)."""
        handle = self._active
        if handle is None or handle.call_id != call_id:
            return
        self._active = None
        at = max(at, handle.started_at)
        self._hub.emit(
            CallEnded(
                call_id,
                at,
                EndCause.HANDED_OFF,
                f"handed to the softphone as a {self.scheme}: link",
                started_at=handle.started_at,
                answered_at=None,
            )
        )

    async def hang_up(self, call_id: str | None = None) -> None:
        """The softphone has the call; this only closes our record of it, now."""
        handle = self._active
        if handle is not None and call_id in (None, handle.call_id):
            self.finish(handle.call_id, self._clock())

    async def close(self) -> None:
        await self.hang_up()
