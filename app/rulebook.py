"""Where the rules files live; reads them as text for the domain's parsers (the only I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from app.domain.cadence import Cadence, parse_cadence_files
from app.domain.clocks import (
    BusinessHours,
    ResponsePolicy,
    parse_business_hours,
    parse_response_policy,
)
from app.domain.compliance import CallingRules, parse_calling_rules
from app.domain.dispositions import DispositionCatalog, parse_dispositions
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
    return Rulebook(
        scoring=parse_scoring_rules(*read_resource("scoring.toml")),
        dispositions=parse_dispositions(*read_resource("dispositions.toml")),
        cadences=parse_cadence_files(
            read_resource(name) for name in list_resources("cadences", ".toml")
        ),
        calling_rules=parse_calling_rules(*read_resource("calling_rules.toml")),
        zip_table=parse_zip_prefixes(*read_resource("us_zip_prefixes.toml")),
        templates=load_templates(
            read_resource(name) for name in list_resources("templates", ".toml")
        ),
        scripts=load_scripts(read_resource(name) for name in list_resources("scripts", ".md")),
        hours=parse_business_hours(hours_text, hours_source),
        response_policy=parse_response_policy(hours_text, hours_source),
    )
