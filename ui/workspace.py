"""The lead workspace's read-only views, rendered as rich text from a frozen LeadDetail.

The lead card (contact, permission to call/text now, clocks, score with reasons, consent, timeline),
the conversation thread and the call script. Colors always come with words ("Allowed",
"Blocked: ...") or a symbol, so everything reads without color too.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.clocks import ClockState
from app.domain.leads import Channel
from app.domain.scripts import RenderedScript, SectionKind
from app.domain.templates import Rendered
from app.services.workqueue import LeadDetail
from ui.theme import LIGHT, Colors

_CLOCK_TEXT = {
    ClockState.ON_TRACK: ("✔ On track", "green"),
    ClockState.DUE_SOON: ("⚠ Due soon", "orange"),
    ClockState.BREACHED: ("✖ Breached", "red"),
    ClockState.MET: ("✔ Met", "green"),
    ClockState.MET_LATE: ("⚠ Met late", "orange"),
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


def render_lead_html(detail: LeadDetail, colors: Colors = LIGHT) -> str:
    _GREEN, _RED, _ORANGE, _MUTED = colors.green, colors.red, colors.orange, colors.muted
    lead = detail.lead
    store_time = detail.customer_time
    parts: list[str] = []
    vehicle = escape(lead.vehicle.description) if lead.vehicle else "No vehicle named"
    parts.append(
        f"<h2 style='margin-bottom:2px'>{escape(lead.person.full_name)}</h2>"
        f"<div style='font-size:14pt'>{vehicle}</div>"
        f"<div style='color:{_MUTED}'>{escape(lead.source.name)} · received "
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
    state, color_name = _CLOCK_TEXT[clocks.state]
    color = getattr(colors, color_name)
    parts.append(
        "<h3>Response clock</h3>"
        f"<div><span style='color:{color}'><b>{state}</b></span> · due "
        f"{_time(clocks.due_at, store_time)} · first agent attempt after "
        f"{_duration(clocks.seconds_to_first_attempt)} · first touch after "
        f"{_duration(clocks.seconds_to_first_touch)}"
        f"{_conversation_clock(clocks.seconds_to_first_conversation)}</div>"
    )
    if detail.next_text:
        parts.append(f"<div><b>Next:</b> {escape(detail.next_text)}</div>")

    score = detail.score
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in score.reasons) or "<li>none</li>"
    parts.append(
        f"<h3>Score {score.score} · {score.tier.value.upper()} · grade {score.grade.value}</h3>"
        f"<div style='color:{_MUTED}'>{escape(score.grade_reason)}</div><ul>{reasons}</ul>"
    )
    extra = []
    for vehicle_item in lead.vehicles[1:]:
        extra.append(f"Also interested in: {escape(vehicle_item.description)}")
    if lead.vehicle is not None:
        v = lead.vehicle
        facts = [v.condition.value, v.interest.value]
        if v.stock_number:
            facts.append(f"stock #{escape(v.stock_number)}")
        if v.price:
            facts.append(f"${v.price:,}")
        extra.append(f"Vehicle: {vehicle} ({', '.join(facts)})")
    if lead.trade_in is not None:
        extra.append(f"Trade-in: {escape(lead.trade_in.description)}")
    if lead.timeframe.description:
        extra.append(f"Timeframe: {escape(lead.timeframe.description)}")
    if lead.comments:
        extra.append(f"They wrote: “{escape(lead.comments)}”")
    consents = ", ".join(
        f"{c.channel.value} ({c.scope.value}, {escape(c.method)})" for c in lead.consents
    )
    extra.append(f"Consent: {consents or '✖ none on file'}")
    if lead.opted_out_at is not None:
        extra.append(
            f"<b style='color:{_RED}'>✖ Opted out {_time(lead.opted_out_at, store_time)}</b>"
        )
    elif lead.do_not_call:
        extra.append(f"<b style='color:{_RED}'>✖ On the do-not-call list</b>")
    else:
        extra.append(f"<span style='color:{_GREEN}'>✔ Not opted out</span>")
    parts.append("<h3>Details</h3>" + "<br>".join(extra))

    timeline = "".join(_timeline_row(a, store_time, _MUTED) for a in detail.timeline[:60])
    timeline = timeline or "<tr><td>No activity yet</td></tr>"
    parts.append(f"<h3>Timeline</h3><table cellspacing='2'>{timeline}</table>")
    return "".join(parts)


def _conversation_clock(seconds: int | None) -> str:
    if seconds is None:
        return " · no conversation yet"
    return f" · first conversation after {_duration(seconds)}"


def _timeline_row(activity: Activity, zone_time: datetime, muted: str) -> str:
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
    elif kind is ActivityKind.NOTE:
        text = f"✎ Note: {escape(activity.body[:200])}"
    elif kind is ActivityKind.SCORE_CHANGE:
        text = f"Score changed to {activity.score} {escape(activity.body[:80])}"
    elif kind is ActivityKind.OPT_OUT:
        text = f"✖ Opted out {escape(activity.body[:60])}"
    else:
        text = f"{kind.value.replace('_', ' ').title()} {escape(activity.body[:60])}"
    return f"<tr><td style='color:{muted}'>{when}&nbsp;&nbsp;</td><td>{text}</td></tr>"


def render_thread_html(detail: LeadDetail, channel: Channel, colors: Colors = LIGHT) -> str:
    """The conversation on one channel, oldest first: theirs on the left, ours on the right."""
    kind = ActivityKind.TEXT if channel is Channel.TEXT else ActivityKind.EMAIL
    zone_time = detail.customer_time
    rows = []
    for activity in reversed(detail.timeline):
        if activity.kind is not kind:
            continue
        inbound = activity.direction is Direction.INBOUND
        who = (detail.lead.person.first_name or "Customer") if inbound else "You"
        if activity.automatic:
            who = "Automatic"
        body = escape(activity.body).replace("\n", "<br>")
        align = "left" if inbound else "right"
        shade = colors.banner_warn if inbound else colors.moved
        rows.append(
            f"<table width='100%' cellspacing='0' cellpadding='6'><tr><td align='{align}'>"
            f"<div style='color:{colors.muted};font-size:small'>{'← ' if inbound else ''}"
            f"{escape(who)} · {_time(activity.at, zone_time)}{'' if inbound else ' →'}</div>"
            f"<table cellpadding='8' style='background:{shade}'><tr><td>{body}</td></tr></table>"
            "</td></tr></table>"
        )
    if not rows:
        noun = "texts" if channel is Channel.TEXT else "emails"
        return f"<p style='color:{colors.muted}'>No {noun} with this customer yet.</p>"
    return "".join(rows)


def _rendered_html(rendered: Rendered, colors: Colors) -> str:
    """Merged text with missing fields highlighted (they show as "[first name?]")."""
    text = rendered.text
    out: list[str] = []
    position = 0
    for span in rendered.spans:
        out.append(escape(text[position : span.start]))
        out.append(
            f"<span style='background:{colors.flash};color:{colors.red}'><b>"
            f"{escape(text[span.start : span.end])}</b></span>"
        )
        position = span.end
    out.append(escape(text[position:]))
    html = "".join(out)
    # Markdown: one newline is a space, a blank line a paragraph, "- " a bullet.
    blocks: list[str] = []
    for line in html.split("\n"):
        stripped = line.strip()
        if not stripped:
            blocks.append("")
        elif stripped.startswith("#"):
            continue
        elif stripped.startswith(("- ", "* ")):
            blocks.append(f"&nbsp;&nbsp;• {stripped[2:]}")
        elif blocks and blocks[-1]:
            blocks[-1] += f" {stripped}"
        else:
            blocks.append(stripped)
    text_html = "<br>".join(b if b else "" for b in blocks)
    while "<br><br><br>" in text_html:
        text_html = text_html.replace("<br><br><br>", "<br><br>")
    return text_html


def render_script_html(script: RenderedScript, colors: Colors = LIGHT) -> str:
    parts = [f"<h2 style='margin-bottom:0'>{escape(script.title)}</h2>"]
    if script.missing:
        names = ", ".join(m.replace("_", " ") for m in script.missing)
        parts.append(
            f"<p style='color:{colors.red}'>⚠ Missing for this lead: <b>{escape(names)}</b> "
            "(highlighted below — ask for it or skip that line)</p>"
        )
    if script.preface.text.strip():
        parts.append(
            f"<p style='color:{colors.muted}'>{_rendered_html(script.preface, colors)}</p>"
        )
    for section in script.sections:
        parts.append(
            f"<h3 style='color:{colors.blue};margin-bottom:2px'>{escape(section.title)}</h3>"
        )
        if section.body.text.strip():
            parts.append(
                f"<div style='font-size:12pt'>{_rendered_html(section.body, colors)}</div>"
            )
        if section.kind is SectionKind.OBJECTIONS:
            for item in section.objections:
                parts.append(
                    f"<p><b>“{_rendered_html(item.objection, colors)}”</b><br>"
                    f"{_rendered_html(item.answer, colors)}</p>"
                )
    return "".join(parts)
