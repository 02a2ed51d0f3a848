"""Dialer backends behind one interface (see model.py): hand-off to the PC's tel: handler,
baresip over ctrl_tcp, the demo softphone, and the lead API's server-side call control; plus
the call → activity record and the compliance check at the click.

The names below are imported on first use (PEP 562): importing one submodule — the call record
for the services, the factory for the program — does not load every backend at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "BaresipDialer": "baresip",
    "DemoDialer": "demo",
    "build_dialer": "factory",
    "DialBlocked": "guard",
    "check_dial": "guard",
    "guarded_dial": "guard",
    "HandoffDialer": "handoff",
    "dial_url": "handoff",
    "system_url_opener": "handoff",
    "CallAnswered": "model",
    "CallDialing": "model",
    "CallEnded": "model",
    "CallEvent": "model",
    "CallHandle": "model",
    "CallInProgress": "model",
    "CallRinging": "model",
    "CallState": "model",
    "Dialer": "model",
    "DialerUnavailable": "model",
    "DialRequest": "model",
    "EndCause": "model",
    "TelephonyError": "model",
    "CallRecord": "record",
    "CallControl": "server",
    "ServerCallDialer": "server",
}

__all__ = [
    "BaresipDialer",
    "CallAnswered",
    "CallControl",
    "CallDialing",
    "CallEnded",
    "CallEvent",
    "CallHandle",
    "CallInProgress",
    "CallRecord",
    "CallRinging",
    "CallState",
    "DemoDialer",
    "DialBlocked",
    "DialRequest",
    "Dialer",
    "DialerUnavailable",
    "EndCause",
    "HandoffDialer",
    "ServerCallDialer",
    "TelephonyError",
    "build_dialer",
    "check_dial",
    "dial_url",
    "guarded_dial",
    "system_url_opener",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


if TYPE_CHECKING:
    from app.telephony.baresip import BaresipDialer
    from app.telephony.demo import DemoDialer
    from app.telephony.factory import build_dialer
    from app.telephony.guard import DialBlocked, check_dial, guarded_dial
    from app.telephony.handoff import HandoffDialer, dial_url, system_url_opener
    from app.telephony.model import (
        CallAnswered,
        CallDialing,
        CallEnded,
        CallEvent,
        CallHandle,
        CallInProgress,
        CallRinging,
        CallState,
        Dialer,
        DialerUnavailable,
        DialRequest,
        EndCause,
        TelephonyError,
    )
    from app.telephony.record import CallRecord
    from app.telephony.server import CallControl, ServerCallDialer
