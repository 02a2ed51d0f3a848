"""The server's rules files, cached in the local store: templates, scripts, cadences,
dispositions, calling rules, scoring, hours and ZIP zones, with a "fresh as of" time.

`refresh_rules` asks GET /v1/rules with the version it holds; a new set is validated with the
same parsers the packaged rules go through (app.domain) before it replaces the cached one — a
broken set is refused with its file, line and field, and the previous set stays. `cached_rulebook`
builds a Rulebook from the cached set (None when there is none usable), so the workstation
decides by the server's rules, offline too; without a cached set it uses the packaged files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.domain.cadence import parse_cadence_files
from app.domain.clocks import parse_business_hours, parse_response_policy
from app.domain.compliance import parse_calling_rules
from app.domain.dispositions import parse_dispositions
from app.domain.errors import DomainError, ResourceError
from app.domain.scoring import parse_scoring_rules
from app.domain.scripts import load_scripts
from app.domain.templates import load_templates
from app.domain.timezones import parse_zip_prefixes
from app.rulebook import Rulebook, check_cadence_references
from app.store.db import LocalStore
from app.store.repository import Dataset

log = logging.getLogger(__name__)

__all__ = ["RulesUpdate", "cached_rulebook", "refresh_rules", "rulebook_from_files"]

_SINGLE = (
    "scoring.toml",
    "dispositions.toml",
    "calling_rules.toml",
    "us_zip_prefixes.toml",
    "store_hours.toml",
)


class _Api(Protocol):
    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


def _source(name: str) -> str:
    return f"resources/{name}"


def rulebook_from_files(files: Mapping[str, str]) -> Rulebook:
    """A Rulebook from rules texts by name (as GET /v1/rules gives them), checked exactly like
    the packaged files. Raises ResourceError naming the file, line and field."""
    for name in _SINGLE:
        if not isinstance(files.get(name), str):
            raise ResourceError(_source(name), "missing from the rules set")
    for name, text in files.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ResourceError(_source(str(name)), "must be a text file")

    def one(name: str) -> tuple[str, str]:
        return files[name], _source(name)

    def folder(prefix: str, suffix: str) -> list[tuple[str, str]]:
        names = sorted(n for n in files if n.startswith(prefix + "/") and n.endswith(suffix))
        return [one(n) for n in names]

    hours_text, hours_source = one("store_hours.toml")
    cadence_files = folder("cadences", ".toml")
    try:
        rulebook = Rulebook(
            scoring=parse_scoring_rules(*one("scoring.toml")),
            dispositions=parse_dispositions(*one("dispositions.toml")),
            cadences=parse_cadence_files(cadence_files),
            calling_rules=parse_calling_rules(*one("calling_rules.toml")),
            zip_table=parse_zip_prefixes(*one("us_zip_prefixes.toml")),
            templates=load_templates(folder("templates", ".toml")),
            scripts=load_scripts(folder("scripts", ".md")),
            hours=parse_business_hours(hours_text, hours_source),
            response_policy=parse_response_policy(hours_text, hours_source),
        )
        check_cadence_references(
            cadence_files, rulebook.cadences.values(), rulebook.templates, rulebook.scripts
        )
    except ResourceError:
        raise
    except DomainError as error:  # a parser's own error without a file: still name the set
        raise ResourceError("resources/", str(error)) from error
    return rulebook


@dataclass(frozen=True, slots=True)
class RulesUpdate:
    """What a refresh did: "updated", "unchanged" or "refused" (with the parser's message)."""

    outcome: str
    version: str | None
    message: str = ""


def _cached(store: LocalStore) -> Mapping[str, Any] | None:
    document = store.repository.document(Dataset.RULES)
    if document is None or not isinstance(document.content, Mapping):
        return None
    return document.content


def cached_version(store: LocalStore) -> str | None:
    content = _cached(store)
    version = content.get("version") if content is not None else None
    return version if isinstance(version, str) else None


def cached_rulebook(store: LocalStore) -> Rulebook | None:
    """The Rulebook of the rules set cached from the server, or None (never downloaded, or the
    cache cannot be read: then the packaged resources apply)."""
    content = _cached(store)
    files = content.get("files") if content is not None else None
    if not isinstance(files, Mapping):
        return None
    try:
        return rulebook_from_files(files)
    except ResourceError as error:
        log.warning("the cached rules cannot be used (%s): using the packaged ones", error)
        return None


async def refresh_rules(api: _Api, store: LocalStore, now: datetime) -> RulesUpdate:
    """Download the server's rules when their version changed; validate, then cache them with
    `now` as fresh-as-of. A broken set is refused and the cached one kept."""
    held = cached_version(store)
    params = {"known": held} if held else None
    answer = await api.get_json("/v1/rules", params)
    version = answer.get("version") if isinstance(answer, Mapping) else None
    if not isinstance(version, str):
        return RulesUpdate("refused", held, "the server's answer has no rules version")
    if answer.get("unchanged") is True and version == held:
        store.repository.set_freshness(Dataset.RULES, now)
        return RulesUpdate("unchanged", version)
    files = answer.get("files")
    if not isinstance(files, Mapping):
        return RulesUpdate("refused", held, "the server's answer has no rules files")
    try:
        rulebook_from_files(files)
    except ResourceError as error:
        message = f"the server's rules (version {version}) were refused: {error}"
        log.warning("%s; keeping version %s", message, held)
        return RulesUpdate("refused", held, message)
    store.repository.save_document(Dataset.RULES, {"version": version, "files": dict(files)}, now)
    return RulesUpdate("updated", version)
