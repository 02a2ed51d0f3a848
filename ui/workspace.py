"""The lead workspace: a readable card of everything about the selected lead.

Rendered as rich text from a frozen LeadDetail. Colors always come with words ("Allowed",
"Blocked: ...") so the card reads without color too.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.clocks import ClockState
from app.domain.leads import Channel
from app.services.workqueue import LeadDetail

_GREEN = "#2e7d32"
_RED = "#c62828"
_ORANGE = "#ef6c00"
_CLOCK_TEXT = {
    ClockState.ON_TRACK: ("On track", _GREEN),
    ClockState.DUE_SOON: ("Due soon", _ORANGE),
    ClockState.BREACHED: ("Breached", _RED),
    ClockState.MET: ("Met", _GREEN),
    ClockState.MET_LATE: ("Met late", _ORANGE),
}
_CHANNEL_NAME = {Channel.CALL: "Call", Channel.TEXT: "Text", Channel.EMAIL: "Email"}


def _time(moment: datetime, zone_time: datetime) -> str:
    local = moment.astimezone(zone_time.tzinfo)
    return local.strftime("%a %b %d, %I:%M %p").replace(" 0", " ")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(abs(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
    return text if seconds >= 0 else f"{text} overdue"


def render_lead_html(detail: LeadDetail) -> str:
    lead = detail.lead
    store_time = detail.customer_time
    parts: list[str] = []
    vehicle = escape(lead.vehicle.description) if lead.vehicle else "No vehicle named"
    parts.append(
        f"<h2 style='margin-bottom:2px'>{escape(lead.person.full_name)}</h2>"
        f"<div style='font-size:14pt'>{vehicle}</div>"
        f"<div style='color:#555'>{escape(lead.source.name)} · received "
        f"{_time(lead.received_at, store_time)} their time</div>"
    )
    local = detail.customer_time.strftime("%I:%M %p").lstrip("0")
    phone = escape(detail.phone_display) or "<i>no working phone</i>"
    email = escape(lead.primary_email.address) if lead.primary_email else "<i>no email</i>"
    parts.append(
        "<h3>Contact</h3>"
        f"<div style='font-size:13pt'><b>{phone}</b> · {email}</div>"
        f"<div>Their time: <b>{local}</b> ({escape(detail.zone.primary)})</div>"
    )
    rows = []
    for channel, decision in detail.contact:
        if decision.allowed:
            verdict = f"<span style='color:{_GREEN}'><b>✔ Allowed now</b></span>"
        else:
            until = ""
            if decision.next_allowed_at is not None:
                until = f" — until {_time(decision.next_allowed_at, store_time)} their time"
            verdict = (
                f"<span style='color:{_RED}'><b>✖ Blocked:</b> "
                f"{escape(decision.message)}{until}</span>"
            )
        rows.append(
            f"<tr><td><b>{_CHANNEL_NAME[channel]}</b>&nbsp;&nbsp;</td><td>{verdict}</td></tr>"
        )
    parts.append(f"<table cellspacing='2'>{''.join(rows)}</table>")

    clocks = detail.clocks
    state, color = _CLOCK_TEXT[clocks.state]
    parts.append(
        "<h3>Response clock</h3>"
        f"<div><span style='color:{color}'><b>{state}</b></span> · due "
        f"{_time(clocks.due_at, store_time)} · first agent attempt after "
        f"{_duration(clocks.seconds_to_first_attempt)} · first touch after "
        f"{_duration(clocks.seconds_to_first_touch)}</div>"
    )
    if detail.next_text:
        parts.append(f"<div><b>Next:</b> {escape(detail.next_text)}</div>")

    score = detail.score
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in score.reasons) or "<li>none</li>"
    parts.append(
        f"<h3>Score {score.score} · {score.tier.value.upper()} · grade {score.grade.value}</h3>"
        f"<div style='color:#555'>{escape(score.grade_reason)}</div><ul>{reasons}</ul>"
    )
    extra = []
    if lead.trade_in is not None:
        extra.append(f"Trade-in: {escape(lead.trade_in.description)}")
    if lead.timeframe.description:
        extra.append(f"Timeframe: {escape(lead.timeframe.description)}")
    if lead.comments:
        extra.append(f"They wrote: “{escape(lead.comments)}”")
    consents = ", ".join(
        f"{c.channel.value} ({c.scope.value}, {escape(c.method)})" for c in lead.consents
    )
    extra.append(f"Consent: {consents or 'none on file'}")
    if lead.opted_out_at is not None:
        extra.append(
            f"<b style='color:{_RED}'>Opted out {_time(lead.opted_out_at, store_time)}</b>"
        )
    parts.append("<h3>Details</h3>" + "<br>".join(extra))

    timeline = "".join(_timeline_row(a, store_time) for a in detail.timeline[:40])
    timeline = timeline or "<tr><td>No activity yet</td></tr>"
    parts.append(f"<h3>Timeline</h3><table cellspacing='2'>{timeline}</table>")
    return "".join(parts)


def _timeline_row(activity: Activity, zone_time: datetime) -> str:
    when = _time(activity.at, zone_time)
    arrow = "←" if activity.direction is Direction.INBOUND else "→"
    kind = activity.kind
    if kind is ActivityKind.CALL:
        outcome = (
            f"answered, {_duration(activity.duration_s)}" if activity.answered else "no answer"
        )
        text = f"{arrow} Call · {outcome}"
    elif kind in (ActivityKind.TEXT, ActivityKind.EMAIL):
        who = " (automatic)" if activity.automatic else ""
        text = f"{arrow} {kind.value.title()}{who}: {escape(activity.body[:90])}"
    elif kind is ActivityKind.DISPOSITION:
        text = f"Outcome: {escape((activity.disposition or '').replace('_', ' '))}"
    elif kind is ActivityKind.APPOINTMENT:
        status = (
            activity.appointment_status.value.replace("_", "-")
            if activity.appointment_status
            else ""
        )
        slot = _time(activity.scheduled_for, zone_time) if activity.scheduled_for else ""
        text = f"Appointment {status} {slot}"
    else:
        text = f"{kind.value.replace('_', ' ').title()} {escape(activity.body[:60])}"
    return f"<tr><td style='color:#555'>{when}&nbsp;&nbsp;</td><td>{text}</td></tr>"
