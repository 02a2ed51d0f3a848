"""What the script panel and the composers show for one lead: merge values, templates, script.

Pure domain calls (no Qt), kept in ui/ because only the widgets need them in this shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.cadence import PlannedStep, StepChannel
from app.domain.dealership import Dealership
from app.domain.leads import Channel
from app.domain.scripts import CallScript, RenderedScript, choose_script, render_script
from app.domain.templates import (
    MergeContext,
    RenderedMessage,
    Template,
    TemplateLibrary,
    merge_context,
    render_template,
)
from app.services.workqueue import LeadDetail

_STEP_CHANNEL = {
    StepChannel.CALL: Channel.CALL,
    StepChannel.TEXT: Channel.TEXT,
    StepChannel.EMAIL: Channel.EMAIL,
}


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    template: Template
    suggested: bool  # suits the lead's next cadence step


def next_agent_step(detail: LeadDetail) -> PlannedStep | None:
    return next((s for s in detail.plan.next_steps if not s.automatic), None)


class LeadContent:
    def __init__(
        self,
        templates: TemplateLibrary,
        scripts: tuple[CallScript, ...],
        dealership: Dealership,
        agent_name: str,
        agent_phone: str,
    ) -> None:
        self._templates = templates
        self._scripts = scripts
        self._dealership = dealership
        self.agent_name = agent_name
        self._agent_phone = agent_phone

    def context(self, detail: LeadDetail) -> MergeContext:
        return merge_context(
            detail.lead,
            self._dealership,
            self.agent_name,
            self._agent_phone,
            appointment_at=detail.plan.appointment_at,
            customer_zone=detail.zone.primary_zone,
        )

    def templates_for(self, detail: LeadDetail, channel: Channel) -> list[TemplateChoice]:
        """Every template on `channel`, the ones for the lead's next step first."""
        step = next_agent_step(detail)
        suited: set[str] = set()
        if step is not None and _STEP_CHANNEL.get(step.channel) is channel:
            if step.template:
                suited.add(step.template)
            suited.update(
                t.id for t in self._templates.for_step(channel, step.kind or step.step_id)
            )
        choices = [
            TemplateChoice(t, t.id in suited)
            for t in self._templates.templates
            if t.channel is channel
        ]
        choices.sort(key=lambda c: not c.suggested)
        return choices

    def render(self, detail: LeadDetail, template: Template) -> RenderedMessage:
        return render_template(template, self.context(detail))

    def script_for(self, detail: LeadDetail) -> RenderedScript:
        step = next_agent_step(detail)
        script = None
        if step is not None and step.script:
            script = next((s for s in self._scripts if s.id == step.script), None)
        if script is None:
            kind = step.kind or step.step_id if step is not None else None
            script = choose_script(self._scripts, detail.lead.source.type, kind)
        return render_script(script, self.context(detail))
