"""Dialer backends behind one interface (see model.py): hand-off to the PC's tel: handler,
baresip over ctrl_tcp, the demo softphone, and the lead API's server-side call control; plus
the call → activity record and the compliance check at the click."""

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
