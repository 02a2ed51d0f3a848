"""Call scripts: parsing the Markdown, rendering merge fields, choosing a script per lead/step."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.dealership import Dealership
from app.domain.errors import ResourceError, TemplateError
from app.domain.leads import Lead, LeadSource, Person, SourceType, Vehicle, VehicleInterest
from app.domain.scripts import (
    REQUIRED_SECTIONS,
    CallScript,
    Objection,
    ScriptSection,
    SectionKind,
    choose_script,
    load_scripts,
    parse_script,
    render_script,
)
from app.domain.templates import MergeContext, merge_context
from app.rulebook import list_resources, read_resource

STORE = Dealership(
    "s1",
    "Lakeside Toyota",
    "America/Chicago",
    "IL",
    "60601",
    phone="312-555-0100",
    address="1200 Lake St, Chicago, IL 60601",
)


def lead_context(appointment: bool = False) -> MergeContext:
    lead = Lead(
        id="l1",
        store_id="s1",
        received_at=datetime(2025, 3, 3, 15, 0, tzinfo=UTC),
        person=Person("Maria", "Gonzalez"),
        source=LeadSource("Dealer website", SourceType.FIRST_PARTY),
        vehicles=(Vehicle(2024, "Toyota", "Camry", "SE", stock_number="T4411"),),
        trade_in=Vehicle(2021, "Honda", "Accord", interest=VehicleInterest.TRADE_IN),
    )
    when = datetime(2025, 3, 4, 20, 0, tzinfo=UTC) if appointment else None
    return merge_context(lead, STORE, "Jordan Miller", "312-555-0142", appointment_at=when)


@functools.cache
def shipped_scripts() -> tuple[CallScript, ...]:
    return load_scripts(read_resource(n) for n in list_resources("scripts", ".md"))


@pytest.fixture
def shipped() -> tuple[CallScript, ...]:
    return shipped_scripts()


def by_id(scripts: tuple[CallScript, ...], script_id: str) -> CallScript:
    return next(s for s in scripts if s.id == script_id)


MINIMAL = """\
+++
id = "mini"
title = "Mini"
step_kinds = ["first_call"]
+++
# Mini script

Read this first, {agent_first_name}.

## Introduction
Hi {first_name}, it's {agent_name}.

## Permission
Got a minute?

## Qualification
What brings you in? Use {{braces}} literally.

## Value
I have the {vehicle}.

## Next Steps
Today or tomorrow?

## Objections
Stay calm.

### "I'm just looking"
Great - come look in person.
Takes 15 minutes.

### I need to talk to my spouse
Bring them along!
"""


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_script_reads_sections_in_order() -> None:
    script = parse_script(MINIMAL, "resources/scripts/mini.md")
    assert (script.id, script.title, script.step_kinds, script.source_types) == (
        "mini",
        "Mini",
        ("first_call",),
        (),
    )
    assert not script.is_default
    assert script.preface == "Read this first, {agent_first_name}."
    assert tuple(s.kind for s in script.sections) == REQUIRED_SECTIONS
    assert script.sections[0] == ScriptSection(
        SectionKind.INTRODUCTION, "Introduction", "Hi {first_name}, it's {agent_name}.", 10
    )
    objections = script.section(SectionKind.OBJECTIONS)
    assert objections is not None
    assert objections.title == "Objections"
    assert objections.text == "Stay calm."
    assert objections.objections == (
        Objection("I'm just looking", "Great - come look in person.\nTakes 15 minutes.", 28),
        Objection("I need to talk to my spouse", "Bring them along!", 32),
    )
    assert script.section(SectionKind.VOICEMAIL) is None


def test_render_script_merges_every_section() -> None:
    script = parse_script(MINIMAL, "mini.md")
    rendered = render_script(script, MergeContext(first_name="Ana", agent_name="Jo Lee"))
    assert rendered.preface.text == "Read this first, [your first name?]."
    intro = rendered.section(SectionKind.INTRODUCTION)
    assert intro is not None and intro.text == "Hi Ana, it's Jo Lee."
    qualification = rendered.section(SectionKind.QUALIFICATION)
    assert qualification is not None
    assert qualification.text == "What brings you in? Use {braces} literally."
    value = rendered.section(SectionKind.VALUE)
    assert value is not None and value.text == "I have the [vehicle?]."
    assert value.missing == ("vehicle",)
    assert rendered.missing == ("agent_first_name", "vehicle")
    assert [o.objection.text for o in rendered.sections[-1].objections] == [
        "I'm just looking",
        "I need to talk to my spouse",
    ]


def test_customer_text_is_never_expanded_in_scripts() -> None:
    script = parse_script(MINIMAL, "mini.md")
    rendered = render_script(script, MergeContext(first_name="{agent_name}", agent_name="Jo"))
    assert rendered.sections[0].text == "Hi {agent_name}, it's Jo."


def test_render_script_rejects_non_script() -> None:
    with pytest.raises(TemplateError, match="CallScript"):
        render_script("script", MergeContext())  # type: ignore[arg-type]


def _without(text: str, heading: str) -> str:
    """MINIMAL with the section under `heading` (and its body) removed."""
    lines = text.splitlines(keepends=True)
    start = lines.index(heading + "\n")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[:start] + lines[end:])


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("# no front matter\n", 1, "", "starts with a front-matter block"),
        ("+++\nid = 'x'\n", 1, "", "not closed"),
        ("", 1, "", "starts with a front-matter block"),
        (_without(MINIMAL, "## Permission"), 13, "## Permission", "missing required section"),
        (_without(MINIMAL, "## Introduction"), 10, "## Introduction", "missing required section"),
        (
            _without(MINIMAL, "## Objections"),
            24,
            "## Objection handling",
            "missing required section",
        ),
        (
            MINIMAL.replace("## Value\nI have the {vehicle}.\n\n", "").replace(
                "## Objections", "## Value\nI have the {vehicle}.\n\n## Objections"
            ),
            19,
            "## Next Steps",
            "out of order: 'Value' comes here",
        ),
        (MINIMAL.replace("## Value", "## Valeu"), 19, "## Valeu", "unknown section 'Valeu'"),
        (
            MINIMAL.replace("## Next Steps", "## Permission"),
            22,
            "## Permission",
            "appears twice (first at line 13)",
        ),
        (
            MINIMAL.replace("Got a minute?", ""),
            13,
            "## Permission",
            "section 'Permission' is empty",
        ),
        (
            MINIMAL.replace("Bring them along!", ""),
            32,
            "I need to talk to my spouse",
            "no suggested",
        ),
        (
            MINIMAL.split('### "I')[0],
            25,
            "## Objections",
            "at least one '### objection'",
        ),
        (MINIMAL.replace("I have the {vehicle}", "I have the {vehcile}"), 20, "vehcile", "vehicle"),
        (MINIMAL.replace("What brings you in?", "What {brings you in?"), 17, "", "stray '{'"),
        (MINIMAL.replace('title = "Mini"', 'title = "Mini"\ncolour = 1'), 4, "colour", "unknown"),
        (
            MINIMAL.replace('step_kinds = ["first_call"]', 'source_types = ["web"]'),
            4,
            "source_types[0]",
            "unknown source type 'web'",
        ),
        (MINIMAL.replace('id = "mini"\n', ""), None, "", "missing required field 'id'"),
        (MINIMAL.replace('id = "mini"', 'id = "Mini Script"'), 2, "id", "lower-case"),
        (MINIMAL.replace('title = "Mini"', 'title = "  "'), 3, "title", "title is empty"),
        (MINIMAL.replace('step_kinds = ["first_call"]', "default = 1"), 4, "default", "bool"),
        (MINIMAL + "\n# Another title\n", 35, "", "belongs above the first section"),
        (MINIMAL.replace('### "I\'m just looking"', "### ''"), 28, "", "customer's words"),
    ],
)
def test_broken_scripts_name_file_line_and_field(
    text: str, line: int | None, field: str, message: str
) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_script(text, "resources/scripts/broken.md")
    err = caught.value
    assert err.source == "resources/scripts/broken.md"
    assert err.line == line
    assert err.field == field
    assert message in str(err)


def test_load_scripts_refuses_duplicate_ids_and_two_defaults() -> None:
    with pytest.raises(
        ResourceError, match=r"duplicate script id 'mini' \(also in a.md\)"
    ) as caught:
        load_scripts([(MINIMAL, "a.md"), (MINIMAL, "b.md")])
    assert (caught.value.source, caught.value.line) == ("b.md", 2)
    first = MINIMAL.replace('step_kinds = ["first_call"]', "default = true")
    second = first.replace('id = "mini"', 'id = "other"')
    with pytest.raises(ResourceError, match="a second default script") as caught:
        load_scripts([(first, "a.md"), (second, "b.md")])
    assert (caught.value.source, caught.value.line, caught.value.field) == ("b.md", 4, "default")


# -- shipped scripts -------------------------------------------------------------------------------


def test_shipped_scripts(shipped: tuple[CallScript, ...]) -> None:
    assert sorted(s.id for s in shipped) == [
        "appointment-confirmation-call",
        "equity-mining-call",
        "follow-up-call",
        "internet-first-call",
        "no-show-call",
    ]
    assert [s.id for s in shipped if s.is_default] == ["follow-up-call"]
    for script in shipped:
        kinds = tuple(s.kind for s in script.sections if s.kind is not SectionKind.VOICEMAIL)
        assert kinds == REQUIRED_SECTIONS, script.id
        objections = script.section(SectionKind.OBJECTIONS)
        assert objections is not None and len(objections.objections) >= 4, script.id


def test_first_call_covers_the_common_objections(shipped: tuple[CallScript, ...]) -> None:
    section = by_id(shipped, "internet-first-call").section(SectionKind.OBJECTIONS)
    assert section is not None
    assert [o.objection for o in section.objections] == [
        "Just give me your best price",
        "I'm just looking",
        "I already found one elsewhere",
        "I need to talk to my spouse",
        "My credit isn't great",
        "What's my trade worth?",
    ]


def test_first_call_renders_the_guide_introduction(shipped: tuple[CallScript, ...]) -> None:
    rendered = render_script(by_id(shipped, "internet-first-call"), lead_context())
    assert rendered.sections[0].text == (
        '"Hi Maria, this is Jordan Miller from Lakeside Toyota. '
        "I'm calling about the 2024 Toyota Camry SE you\nasked about.\""
    )
    assert rendered.missing == ()
    assert rendered.preface.text.endswith("This lead came from Dealer website.")


def test_equity_script_uses_the_guide_wording(shipped: tuple[CallScript, ...]) -> None:
    rendered = render_script(by_id(shipped, "equity-mining-call"), lead_context())
    assert (
        "your 2021 Honda Accord has\nheld its value exceptionally well" in rendered.sections[0].text
    )
    value = rendered.section(SectionKind.VALUE)
    assert value is not None and "about the same monthly payment" in value.text


def test_every_shipped_script_renders_complete(shipped: tuple[CallScript, ...]) -> None:
    ctx = lead_context(appointment=True)
    for script in shipped:
        rendered = render_script(script, ctx)
        assert rendered.missing == (), script.id
    confirmation = render_script(by_id(shipped, "appointment-confirmation-call"), ctx)
    qualification = confirmation.section(SectionKind.QUALIFICATION)
    assert qualification is not None
    assert "seeing you on Tuesday, March 4 at 2:00 PM." in qualification.text


def test_confirmation_script_without_appointment_flags_it(shipped: tuple[CallScript, ...]) -> None:
    rendered = render_script(by_id(shipped, "appointment-confirmation-call"), lead_context())
    assert "appointment_time" in rendered.missing
    qualification = rendered.section(SectionKind.QUALIFICATION)
    assert qualification is not None
    assert "seeing you on [appointment time?]." in qualification.text


# -- choosing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_type", "step_kind", "expected"),
    [
        (SourceType.FIRST_PARTY, "first_call", "internet-first-call"),
        ("third_party", "first_call", "internet-first-call"),
        (SourceType.CHAT, "first_call", "internet-first-call"),
        (SourceType.PHONE, "first_call", "follow-up-call"),  # no phone script: the default
        (SourceType.FIRST_PARTY, "follow_up_call", "follow-up-call"),
        (SourceType.EQUITY_MINING, "first_call", "equity-mining-call"),
        (SourceType.SERVICE_TO_SALES, "follow_up_call", "equity-mining-call"),
        (SourceType.EQUITY_MINING, "confirmation_call", "appointment-confirmation-call"),
        (SourceType.THIRD_PARTY, "no_show_call", "no-show-call"),
        (None, None, "follow-up-call"),
        (SourceType.WALK_IN, "something_new", "follow-up-call"),
    ],
)
def test_choose_script_picks_the_most_specific(
    shipped: tuple[CallScript, ...],
    source_type: SourceType | str | None,
    step_kind: str | None,
    expected: str,
) -> None:
    assert choose_script(shipped, source_type, step_kind).id == expected


def _bare(script_id: str, **changes: object) -> CallScript:
    base = parse_script(MINIMAL, "mini.md")
    fields: dict[str, object] = {"id": script_id, "step_kinds": (), **changes}
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def test_choose_script_ranking_rules() -> None:
    anything = _bare("anything")
    default = _bare("default", is_default=True)
    step = _bare("step", step_kinds=("first_call",))
    narrow = _bare("narrow", source_types=(SourceType.PHONE,))
    broad = _bare("broad", source_types=(SourceType.PHONE, SourceType.CHAT))
    both = _bare("both", source_types=(SourceType.CHAT,), step_kinds=("first_call",))
    scripts = (anything, default, step, broad, narrow, both)
    assert choose_script(scripts, SourceType.CHAT, "first_call").id == "both"
    assert choose_script(scripts, SourceType.PHONE, "first_call").id == "step"
    assert choose_script(scripts, SourceType.PHONE, "other").id == "narrow"
    assert choose_script(scripts, SourceType.CHAT, "other").id == "broad"
    # Unconstrained scripts tie: the default wins over the one listed first.
    assert choose_script(scripts, SourceType.WALK_IN, None).id == "default"
    assert choose_script((anything, _bare("later")), None, None).id == "anything"


def test_choose_script_falls_back_to_a_constrained_default() -> None:
    fallback = _bare("fallback", is_default=True, step_kinds=("follow_up_call",))
    other = _bare("other", step_kinds=("first_call",))
    assert choose_script((other, fallback), SourceType.PHONE, "no_show_call").id == "fallback"


def test_choose_script_errors() -> None:
    only = _bare("only", step_kinds=("first_call",))
    with pytest.raises(TemplateError, match="no call scripts"):
        choose_script((), None, None)
    with pytest.raises(TemplateError, match="none is marked default"):
        choose_script((only,), None, "no_show_call")
    with pytest.raises(TemplateError, match="unknown source type 'fax'"):
        choose_script((only,), "fax", "first_call")
    with pytest.raises(TemplateError, match="more than one default call script: a, b"):
        choose_script((_bare("a", is_default=True), _bare("b", is_default=True)), None, None)
    with pytest.raises(TemplateError, match="step_kind must be text"):
        choose_script((only,), None, 3)  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="not a CallScript"):
        choose_script(["x"], None, None)  # type: ignore[list-item]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([*SourceType, None]),
    st.sampled_from(["first_call", "follow_up_call", "confirmation_call", "no_show_call", None]),
)
def test_choose_script_always_finds_a_suitable_shipped_script(
    source_type: SourceType | None, step_kind: str | None
) -> None:
    chosen = choose_script(shipped_scripts(), source_type, step_kind)
    suits = (not chosen.source_types or source_type in chosen.source_types) and (
        not chosen.step_kinds or step_kind in chosen.step_kinds
    )
    assert suits or chosen.is_default
