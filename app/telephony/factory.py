"""Build the dialer the settings name (app.settings: dialer, dialer_uri_scheme, baresip_host,
baresip_port). The UI passes its URL opener (QDesktopServices.openUrl wrapped to take a str); the
composition root passes the lead API client as `call_control` for dialer = "server"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from app.telephony.model import Dialer, TelephonyError

if TYPE_CHECKING:
    from app.telephony.handoff import UrlOpener
    from app.telephony.server import CallControl

DIALERS = ("handoff", "baresip", "demo", "server")


class DialerSettings(Protocol):
    @property
    def dialer(self) -> str: ...
    @property
    def dialer_uri_scheme(self) -> str: ...
    @property
    def baresip_host(self) -> str: ...
    @property
    def baresip_port(self) -> int: ...


def build_dialer(
    settings: DialerSettings,
    *,
    open_url: UrlOpener | None = None,
    demo_seed: int = 7,
    baresip_uri_template: str = "{number}",
    call_control: CallControl | None = None,
) -> Dialer:
    # Each backend is imported when chosen: start-up loads only the one the settings name.
    kind = settings.dialer
    if kind == "handoff":
        from app.telephony.handoff import HandoffDialer

        return HandoffDialer(open_url, scheme=settings.dialer_uri_scheme)
    if kind == "baresip":
        from app.telephony.baresip import BaresipDialer

        return BaresipDialer(
            settings.baresip_host, settings.baresip_port, uri_template=baresip_uri_template
        )
    if kind == "demo":
        from app.telephony.demo import DemoDialer

        return DemoDialer(demo_seed)
    if kind == "server":
        if call_control is None:
            raise TelephonyError("dialer 'server' needs the lead API client (call_control)")
        from app.telephony.server import ServerCallDialer

        return ServerCallDialer(call_control)
    raise TelephonyError(f"unknown dialer {kind!r} ({', '.join(DIALERS)})")


async def probe_dialer(settings: DialerSettings, *, timeout_s: float = 3.0) -> str:
    """The settings dialog's "Test" button: what this dialer will do, checked where it can be.

    Raises TelephonyError (DialerUnavailable for an unreachable softphone) with the reason.
    """
    kind = settings.dialer
    if kind == "handoff":
        return (
            f"Calls are handed to this PC's {settings.dialer_uri_scheme}: link handler "
            "(your softphone); the program cannot see the call, so the disposition ends it."
        )
    if kind == "baresip":
        from app.telephony.baresip import BaresipDialer

        dialer = BaresipDialer(
            settings.baresip_host, settings.baresip_port, command_timeout_s=timeout_s
        )
        try:
            accounts = await dialer.check()
        finally:
            await dialer.close()
        where = f"{settings.baresip_host}:{settings.baresip_port}"
        return f"baresip answered at {where}. {accounts or 'No SIP account is registered.'}"
    if kind == "demo":
        return "The demo softphone is ready: calls ring and answer with realistic odds."
    if kind == "server":
        return "Calls are placed by the lead API, which rings your phone first."
    raise TelephonyError(f"unknown dialer {kind!r} ({', '.join(DIALERS)})")
