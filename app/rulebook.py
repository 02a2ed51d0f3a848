"""Where the rules files live; reads them as text for the domain's parsers (the only I/O here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from app.domain.cadence import Cadence, Step, StepChannel, parse_cadence_files
from app.domain.clocks import (
    BusinessHours,
    ResponsePolicy,
    parse_business_hours,
    parse_response_policy,
)
from app.domain.compliance import CallingRules, parse_calling_rules
from app.domain.dispositions import DispositionCatalog, parse_dispositions
from app.domain.errors import ResourceError
from app.domain.leads import Channel
from app.domain.rules_file import RulesDocument
from app.domain.scoring import ScoringRules, parse_scoring_rules
from app.domain.scripts import CallScript, load_scripts
from app.domain.templates import TemplateLibrary, load_templates
from app.domain.timezones import ZipPrefixTable, parse_zip_prefixes


def resources_root() -> Traversable:
    return resources.files("resources")


def read_resource(relative: str) -> tuple[str, str]:
    """(text, source name) of a file under resources/, e.g. "scoring.toml" or "cadences/x.toml"."""
    node = resources_root()
    for part in relative.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8"), f"resources/{relative}"


def list_resources(folder: str, suffix: str) -> list[str]:
    """Sorted relative names of the files in a resources/ sub-folder ending in `suffix`."""
    node = resources_root().joinpath(folder)
    return sorted(
        f"{folder}/{child.name}" for child in node.iterdir() if child.name.endswith(suffix)
    )


@dataclass(frozen=True)
class Rulebook:
    """Every rules file, parsed and validated: what workstation and server both decide by."""

    scoring: ScoringRules
    dispositions: DispositionCatalog
    cadences: dict[str, Cadence]
    calling_rules: CallingRules
    zip_table: ZipPrefixTable
    templates: TemplateLibrary
    scripts: tuple[CallScript, ...]
    hours: BusinessHours
    response_policy: ResponsePolicy


def load_rulebook() -> Rulebook:
    """Read and validate all of resources/; a broken file raises ResourceError (file, line)."""
    hours_text, hours_source = read_resource("store_hours.toml")
    cadence_files = [read_resource(name) for name in list_resources("cadences", ".toml")]
    rulebook = Rulebook(
        scoring=parse_scoring_rules(*read_resource("scoring.toml")),
        dispositions=parse_dispositions(*read_resource("dispositions.toml")),
        cadences=parse_cadence_files(cadence_files),
        calling_rules=parse_calling_rules(*read_resource("calling_rules.toml")),
        zip_table=parse_zip_prefixes(*read_resource("us_zip_prefixes.toml")),
        templates=load_templates(
            read_resource(name) for name in list_resources("templates", ".toml")
        ),
        scripts=load_scripts(read_resource(name) for name in list_resources("scripts", ".md")),
        hours=parse_business_hours(hours_text, hours_source),
        response_policy=parse_response_policy(hours_text, hours_source),
    )
    check_cadence_references(
        cadence_files, rulebook.cadences.values(), rulebook.templates, rulebook.scripts
    )
    return rulebook


_STEP_TEMPLATE_CHANNEL = {StepChannel.TEXT: Channel.TEXT, StepChannel.EMAIL: Channel.EMAIL}


def check_cadence_references(
    files: Iterable[tuple[str, str]],
    cadences: Iterable[Cadence],
    templates: TemplateLibrary,
    scripts: Iterable[CallScript],
) -> None:
    """Every template and script a cadence step names exists, on the step's channel.

    Checked across files, so it lives here rather than in one file's parser.
    """
    texts = {source: text for text, source in files}
    script_ids = {script.id for script in scripts}
    for cadence in cadences:
        for index, step in enumerate(cadence.steps):
            problem = _reference_problem(step, templates, script_ids)
            if problem is None:
                continue
            field, message = problem
            path = ("steps", index, field)
            text = texts.get(cadence.source)
            line = RulesDocument(text, cadence.source).line_of(path) if text else None
            raise ResourceError(cadence.source, message, line=line, field=f"steps[{index}].{field}")


def _reference_problem(
    step: Step, templates: TemplateLibrary, script_ids: set[str]
) -> tuple[str, str] | None:
    if step.template is not None:
        if step.template not in templates.ids:
            return "template", f"no template with id '{step.template}'"
        wanted = _STEP_TEMPLATE_CHANNEL.get(step.channel)
        if wanted is not None and templates.get(step.template).channel is not wanted:
            return "template", f"template '{step.template}' is not a {wanted.value} template"
    if step.script is not None and step.script not in script_ids:
        return "script", f"no call script with id '{step.script}'"
    return None
