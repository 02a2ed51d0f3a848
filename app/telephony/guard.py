"""Compliance at the click: may this lead be called now, and if not, every reason why.

`check_dial` asks the domain (app.domain.compliance.check_contact on the CALL channel: quiet hours
in every zone the customer may be in, state Sunday/holiday bans, do-not-call, opt-outs, bad
numbers, rolling 24-hour call caps). `guarded_dial` checks and then dials, or raises DialBlocked
carrying the decision (its `.message` is for the agent; `.next_allowed_at` says when, if time will
fix it). Offline too: it needs only the lead, its history and the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from app.domain.activities import Activity
from app.domain.compliance import CallingRules, ContactDecision, check_contact
from app.domain.leads import Channel, Lead
from app.domain.phones import Phone
from app.domain.timezones import ZipPrefixTable, ZoneResolution, resolve_zones
from app.telephony.model import CallHandle, Dialer, DialRequest, TelephonyError


class DialBlocked(TelephonyError):
    """Compliance refused the dial; nothing was dialed."""

    def __init__(self, decision: ContactDecision) -> None:
        super().__init__(f"not dialed: {decision.message}")
        self.decision = decision


def check_dial(
    rules: CallingRules,
    lead: Lead,
    history: Iterable[Activity],
    now: datetime,
    *,
    zip_table: ZipPrefixTable | None = None,
    resolution: ZoneResolution | None = None,
    fallback_zone: str | None = None,
    phone: Phone | str | None = None,
    dnc_numbers: frozenset[str] = frozenset(),
) -> ContactDecision:
    """The domain's decision for calling `lead` (at `phone`, default its primary) at `now`.
    Give the customer's `resolution`, or the `zip_table` (and the store's zone as
    `fallback_zone`) to resolve it from the lead."""
    if resolution is None:
        if zip_table is None:
            raise TelephonyError("check_dial needs the customer's zones or the ZIP table")
        phone_obj = phone if isinstance(phone, Phone) else None
        resolution = resolve_zones(lead, zip_table, phone=phone_obj, fallback_zone=fallback_zone)
    return check_contact(
        rules,
        lead,
        history,
        Channel.CALL,
        now,
        resolution=resolution,
        dnc_numbers=dnc_numbers,
        phone=phone,
    )


async def guarded_dial(
    dialer: Dialer, request: DialRequest, decision: ContactDecision
) -> CallHandle:
    """Dial only when `decision` allows it, and only the number it was made for."""
    if not decision.allowed:
        raise DialBlocked(decision)
    if decision.address is not None and decision.address != request.number:
        raise TelephonyError(
            f"the compliance check was for {decision.address}, not {request.number}: check again"
        )
    return await dialer.dial(request)
