"""Call scripts: Markdown with the guide's sections, merge fields, and a choice of script per lead.

A script file (resources/scripts/*.md) opens with TOML front matter between `+++` lines:

    +++
    id = "internet-first-call"
    title = "First call - new internet lead"
    source_types = ["first_party", "third_party"]   # optional: lead source types it suits
    step_kinds = ["first_call"]                     # optional: cadence step kinds it suits
    default = false                                 # optional: the fallback when nothing suits
    +++

then `## ` sections in the guide's order: Introduction, Permission, Qualification, Value, Next step,
Objection handling (each objection a `### ` heading with its answer below). An optional
`## Voicemail` may sit anywhere. Text uses the same merge fields as message templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import ResourceError, TemplateError
from app.domain.leads import SourceType
from app.domain.rules_file import RulesDocument
from app.domain.templates import MergeContext, Rendered, TemplateTextError, parse_text, render


class SectionKind(StrEnum):
    INTRODUCTION = "introduction"
    PERMISSION = "permission"
    QUALIFICATION = "qualification"
    VALUE = "value"
    NEXT_STEP = "next_step"
    OBJECTIONS = "objection_handling"
    VOICEMAIL = "voicemail"  # optional, anywhere


# The guide's first-call structure, in the order an agent works through it.
REQUIRED_SECTIONS = (
    SectionKind.INTRODUCTION,
    SectionKind.PERMISSION,
    SectionKind.QUALIFICATION,
    SectionKind.VALUE,
    SectionKind.NEXT_STEP,
    SectionKind.OBJECTIONS,
)
SECTION_TITLES = {
    SectionKind.INTRODUCTION: "Introduction",
    SectionKind.PERMISSION: "Permission",
    SectionKind.QUALIFICATION: "Qualification",
    SectionKind.VALUE: "Value",
    SectionKind.NEXT_STEP: "Next step",
    SectionKind.OBJECTIONS: "Objection handling",
    SectionKind.VOICEMAIL: "Voicemail",
}
_HEADING_NAMES = {
    "introduction": SectionKind.INTRODUCTION,
    "intro": SectionKind.INTRODUCTION,
    "permission": SectionKind.PERMISSION,
    "qualification": SectionKind.QUALIFICATION,
    "qualifying": SectionKind.QUALIFICATION,
    "value": SectionKind.VALUE,
    "next step": SectionKind.NEXT_STEP,
    "next steps": SectionKind.NEXT_STEP,
    "objection handling": SectionKind.OBJECTIONS,
    "objections": SectionKind.OBJECTIONS,
    "voicemail": SectionKind.VOICEMAIL,
}
_FRONT_KEYS = {"id", "title", "source_types", "step_kinds", "default"}
_FENCE = "+++"
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_ID = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_QUOTES = "\"'“”‘’ "


@dataclass(frozen=True, slots=True)
class Objection:
    objection: str  # what the customer says, e.g. "I'm just looking"
    answer: str  # the suggested answer (Markdown, merge fields)
    line: int


@dataclass(frozen=True, slots=True)
class ScriptSection:
    kind: SectionKind
    title: str  # as written in the file
    text: str  # Markdown with merge fields; for objection handling, any lead-in text
    line: int
    objections: tuple[Objection, ...] = ()


@dataclass(frozen=True, slots=True)
class CallScript:
    id: str
    title: str
    sections: tuple[ScriptSection, ...]
    source_types: tuple[SourceType, ...] = ()  # empty: any source
    step_kinds: tuple[str, ...] = ()  # empty: any step
    is_default: bool = False
    source: str = ""
    preface: str = ""  # notes for the agent above the first section

    def section(self, kind: SectionKind) -> ScriptSection | None:
        return next((s for s in self.sections if s.kind is kind), None)


@dataclass(frozen=True, slots=True)
class RenderedObjection:
    objection: Rendered
    answer: Rendered


@dataclass(frozen=True, slots=True)
class RenderedSection:
    kind: SectionKind
    title: str
    body: Rendered
    objections: tuple[RenderedObjection, ...] = ()

    @property
    def text(self) -> str:
        return self.body.text

    @property
    def missing(self) -> tuple[str, ...]:
        names = [*self.body.missing]
        for item in self.objections:
            names += [*item.objection.missing, *item.answer.missing]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class RenderedScript:
    script_id: str
    title: str
    preface: Rendered
    sections: tuple[RenderedSection, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        names = [*self.preface.missing]
        for section in self.sections:
            names += section.missing
        return tuple(dict.fromkeys(names))

    def section(self, kind: SectionKind) -> RenderedSection | None:
        return next((s for s in self.sections if s.kind is kind), None)


# -- parsing ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Draft:
    kind: SectionKind
    title: str
    line: int
    lines: list[str]
    objections: list[tuple[str, int, list[str]]]


def parse_script(text: str, source: str) -> CallScript:
    """One call script, validated; a broken one raises ResourceError naming file, line and field."""
    if not isinstance(text, str):
        raise ResourceError(source, "a call script must be text")
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise ResourceError(
            source, "a call script starts with a front-matter block between '+++' lines", line=1
        )
    close = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if close is None:
        raise ResourceError(source, "front matter is not closed by a '+++' line", line=1)
    # A blank first line keeps the TOML's line numbers equal to the file's.
    doc = RulesDocument("\n" + "\n".join(lines[1:close]), source)
    header = _parse_front_matter(doc)
    preface, drafts = _split_sections(lines, close + 1, source)
    sections = tuple(_finish(draft, source) for draft in drafts)
    _check_sections(sections, source, len(lines))
    return CallScript(
        id=header[0],
        title=header[1],
        sections=sections,
        source_types=header[2],
        step_kinds=header[3],
        is_default=header[4],
        source=source,
        preface=preface,
    )


def _parse_front_matter(
    doc: RulesDocument,
) -> tuple[str, str, tuple[SourceType, ...], tuple[str, ...], bool]:
    data = doc.data
    doc.check_keys(data, (), _FRONT_KEYS)
    script_id = doc.get(data, ("id",), str).strip()
    if not _ID.fullmatch(script_id):
        raise doc.error(("id",), f"id {script_id!r} must be lower-case letters, digits, '_' or '-'")
    title = doc.get(data, ("title",), str).strip()
    if not title:
        raise doc.error(("title",), "title is empty")
    source_types: list[SourceType] = []
    for index, value in enumerate(doc.array(("source_types",), data.get("source_types", []))):
        if value not in SourceType.__members__.values():
            known = ", ".join(t.value for t in SourceType)
            raise doc.error(("source_types", index), f"unknown source type {value!r} ({known})")
        source_types.append(SourceType(value))
    step_kinds: list[str] = []
    for index, value in enumerate(doc.array(("step_kinds",), data.get("step_kinds", []))):
        if not isinstance(value, str) or not value.strip():
            raise doc.error(("step_kinds", index), "each step kind must be a non-empty string")
        step_kinds.append(value.strip())
    is_default = doc.get(data, ("default",), bool, required=False) or False
    return script_id, title, tuple(source_types), tuple(step_kinds), is_default


def _split_sections(lines: list[str], start: int, source: str) -> tuple[str, list[_Draft]]:
    preface: list[str] = []
    drafts: list[_Draft] = []
    for index in range(start, len(lines)):
        number, line = index + 1, lines[index]
        _check_merge_fields(line, source, number)
        heading = _HEADING.match(line)
        level = len(heading.group(1)) if heading else 0
        if heading and level == 1:
            if drafts:
                raise ResourceError(
                    source, "a '# ' title belongs above the first section", line=number
                )
            continue  # the display title; the front matter's title is the one used
        if heading and level == 2:
            drafts.append(_new_section(heading.group(2), number, source, drafts))
            continue
        if not drafts:
            preface.append(line)
            continue
        current = drafts[-1]
        if heading and level == 3 and current.kind is SectionKind.OBJECTIONS:
            objection = heading.group(2).strip(_QUOTES)
            if not objection:
                raise ResourceError(
                    source, "an objection heading needs the customer's words", line=number
                )
            current.objections.append((objection, number, []))
        elif current.objections:
            current.objections[-1][2].append(line)
        else:
            current.lines.append(line)
    return "\n".join(preface).strip(), drafts


def _new_section(title: str, number: int, source: str, drafts: list[_Draft]) -> _Draft:
    name = " ".join(title.lower().rstrip(":").split())
    kind = _HEADING_NAMES.get(name)
    if kind is None:
        known = ", ".join(SECTION_TITLES.values())
        raise ResourceError(
            source, f"unknown section '{title}' (known: {known})", line=number, field=f"## {title}"
        )
    for earlier in drafts:
        if earlier.kind is kind:
            raise ResourceError(
                source,
                f"section '{title}' appears twice (first at line {earlier.line})",
                line=number,
                field=f"## {title}",
            )
    return _Draft(kind, title.strip(), number, [], [])


def _finish(draft: _Draft, source: str) -> ScriptSection:
    text = "\n".join(draft.lines).strip()
    objections: list[Objection] = []
    for words, number, answer_lines in draft.objections:
        answer = "\n".join(answer_lines).strip()
        if not answer:
            raise ResourceError(
                source, f"objection '{words}' has no suggested answer", line=number, field=words
            )
        objections.append(Objection(words, answer, number))
    if draft.kind is SectionKind.OBJECTIONS and not objections:
        raise ResourceError(
            source,
            "objection handling needs at least one '### objection' with its answer",
            line=draft.line,
            field=f"## {draft.title}",
        )
    if draft.kind is not SectionKind.OBJECTIONS and not text:
        raise ResourceError(
            source, f"section '{draft.title}' is empty", line=draft.line, field=f"## {draft.title}"
        )
    return ScriptSection(draft.kind, draft.title, text, draft.line, tuple(objections))


def _check_sections(sections: tuple[ScriptSection, ...], source: str, last_line: int) -> None:
    """Every required section present, in the guide's order."""
    present = [s for s in sections if s.kind is not SectionKind.VOICEMAIL]
    position = {s.kind: s for s in present}
    for index, kind in enumerate(REQUIRED_SECTIONS):
        if kind in position:
            continue
        later = [position[k].line for k in REQUIRED_SECTIONS[index + 1 :] if k in position]
        raise ResourceError(
            source,
            f"missing required section '## {SECTION_TITLES[kind]}' "
            f"(sections: {', '.join(SECTION_TITLES[k] for k in REQUIRED_SECTIONS)})",
            line=later[0] if later else max(last_line, 1),
            field=f"## {SECTION_TITLES[kind]}",
        )
    for expected, section in zip(REQUIRED_SECTIONS, present, strict=True):
        if section.kind is not expected:
            raise ResourceError(
                source,
                f"section '{section.title}' is out of order: "
                f"'{SECTION_TITLES[expected]}' comes here in the guide's order",
                line=section.line,
                field=f"## {section.title}",
            )


def _check_merge_fields(line: str, source: str, number: int) -> None:
    # Merge fields never span lines, so checking line by line gives the exact line of a bad one.
    try:
        parse_text(line, source)
    except TemplateTextError as exc:
        raise ResourceError(
            source, f"column {exc.column}: {exc.detail}", line=number, field=exc.field
        ) from exc


def load_scripts(documents: Iterable[tuple[str, str]]) -> tuple[CallScript, ...]:
    """Scripts from (text, source) pairs; ids unique and at most one default across all files."""
    scripts: list[CallScript] = []
    seen: dict[str, CallScript] = {}
    default: CallScript | None = None
    for text, source in documents:
        script = parse_script(text, source)
        if script.id in seen:
            raise ResourceError(
                source,
                f"duplicate script id '{script.id}' (also in {seen[script.id].source})",
                line=_front_line(text, "id"),
                field="id",
            )
        if script.is_default and default is not None:
            raise ResourceError(
                source,
                f"a second default script (the default is '{default.id}' in {default.source})",
                line=_front_line(text, "default"),
                field="default",
            )
        seen[script.id] = script
        default = script if script.is_default else default
        scripts.append(script)
    return tuple(scripts)


def _front_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*{key}\s*=", line):
            return number
    return None


# -- rendering and choosing ------------------------------------------------------------------------


def render_script(script: CallScript, context: MergeContext) -> RenderedScript:
    if not isinstance(script, CallScript):
        raise TemplateError(f"script must be a CallScript, got {type(script).__name__}")
    name = script.id
    sections = tuple(
        RenderedSection(
            kind=section.kind,
            title=section.title,
            body=render(section.text, context, template_name=f"{name} / {section.title}"),
            objections=tuple(
                RenderedObjection(
                    render(item.objection, context, template_name=f"{name} / objection"),
                    render(item.answer, context, template_name=f"{name} / {item.objection}"),
                )
                for item in section.objections
            ),
        )
        for section in script.sections
    )
    preface = render(script.preface, context, template_name=f"{name} / preface")
    return RenderedScript(script.id, script.title, preface, sections)


def choose_script(
    scripts: Iterable[CallScript],
    source_type: SourceType | str | None,
    step_kind: str | None,
) -> CallScript:
    """The most specific script for this lead source and cadence step.

    A script suits when each list it declares contains the given value (an empty list suits
    anything). Matching the step counts more than matching the source, both more than either;
    then the narrower script, then the default, then the first given. When none suits, the
    default script.
    """
    candidates = tuple(scripts)
    if not candidates:
        raise TemplateError("no call scripts to choose from")
    for script in candidates:
        if not isinstance(script, CallScript):
            raise TemplateError(f"not a CallScript: {type(script).__name__}")
    wanted_source = _source_type(source_type)
    if step_kind is not None and not isinstance(step_kind, str):
        raise TemplateError(f"step_kind must be text, got {type(step_kind).__name__}")
    defaults = [s for s in candidates if s.is_default]
    if len(defaults) > 1:
        raise TemplateError(
            f"more than one default call script: {', '.join(s.id for s in defaults)}"
        )
    best: CallScript | None = None
    best_rank: tuple[int, int, bool, int] | None = None
    for order, script in enumerate(candidates):
        if script.source_types and wanted_source not in script.source_types:
            continue
        if script.step_kinds and step_kind not in script.step_kinds:
            continue
        specificity = (2 if script.step_kinds else 0) + (1 if script.source_types else 0)
        breadth = len(script.step_kinds) + len(script.source_types)
        rank = (specificity, -breadth, script.is_default, -order)
        if best_rank is None or rank > best_rank:
            best, best_rank = script, rank
    if best is not None:
        return best
    if defaults:
        return defaults[0]
    raise TemplateError(
        f"no call script suits source type {source_type!r} and step {step_kind!r}, "
        "and none is marked default"
    )


def _source_type(value: SourceType | str | None) -> SourceType | None:
    if value is None or isinstance(value, SourceType):
        return value
    if isinstance(value, str) and value in SourceType.__members__.values():
        return SourceType(value)
    known = ", ".join(t.value for t in SourceType)
    raise TemplateError(f"unknown source type {value!r} (known: {known})")
