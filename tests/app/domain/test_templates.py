"""Merge fields, rendering rules, and the shipped message templates."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.dealership import Dealership
from app.domain.errors import ResourceError, TemplateError
from app.domain.leads import (
    Channel,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleInterest,
)
from app.domain.sms import SmsEncoding
from app.domain.templates import (
    MERGE_FIELDS,
    MergeContext,
    MissingSpan,
    Template,
    TemplateKind,
    TemplateLibrary,
    TemplateTextError,
    UnknownFieldError,
    format_phone,
    load_templates,
    merge_context,
    missing_marker,
    parse_templates,
    render,
    render_template,
)
from app.rulebook import list_resources, read_resource

STORE = Dealership(
    id="s1",
    name="Lakeside Toyota",
    time_zone="America/Chicago",
    state="IL",
    postal_code="60601",
    phone="312-555-0100",
    website="lakesidetoyota.example",
    address="1200 Lake St, Chicago, IL 60601",
)
RECEIVED = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


def make_lead(**changes: object) -> Lead:
    lead = Lead(
        id="l1",
        store_id="s1",
        received_at=RECEIVED,
        person=Person("Maria", "Gonzalez"),
        source=LeadSource("Autotrader", SourceType.THIRD_PARTY),
        vehicles=(Vehicle(2024, "Toyota", "Camry", "SE", stock_number="T4411"),),
        trade_in=Vehicle(2021, "Honda", "Accord", "EX", interest=VehicleInterest.TRADE_IN),
        timeframe=Timeframe("within 2 weeks", 14),
    )
    return dataclasses.replace(lead, **changes)  # type: ignore[arg-type]


def full_context(**appointment: object) -> MergeContext:
    return merge_context(make_lead(), STORE, "Jordan Miller", "(312) 555-0142", **appointment)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return load_templates(read_resource(n) for n in list_resources("templates", ".toml"))


# -- rendering ------------------------------------------------------------------------------------


def test_render_merges_fields() -> None:
    ctx = MergeContext(first_name="Ana", agent_name="Jordan", dealership="Lakeside Toyota")
    result = render("Hi {first_name}, this is {agent_name} from {dealership}.", ctx)
    assert result.text == "Hi Ana, this is Jordan from Lakeside Toyota."
    assert result.missing == ()
    assert result.complete
    assert result.fields == ("first_name", "agent_name", "dealership")


def test_missing_value_gets_a_visible_marker_never_hi_comma() -> None:
    result = render("Hi {first_name}, this is {agent_name}.", MergeContext(agent_name="Jordan"))
    assert result.text == "Hi [first name?], this is Jordan."
    assert "Hi ," not in result.text
    assert result.missing == ("first_name",)
    assert result.spans == (MissingSpan("first_name", 3, 16),)
    assert result.text[3:16] == "[first name?]"
    assert not result.complete


def test_whitespace_only_value_counts_as_missing() -> None:
    result = render("Hi {first_name}!", MergeContext(first_name="  \t"))
    assert result.text == "Hi [first name?]!"
    assert result.missing == ("first_name",)


def test_repeated_missing_field_listed_once_with_every_span() -> None:
    result = render("{vehicle} / {dealership} / {vehicle}", MergeContext(dealership="D"))
    assert result.text == "[vehicle?] / D / [vehicle?]"
    assert result.missing == ("vehicle",)
    assert result.spans == (MissingSpan("vehicle", 0, 10), MissingSpan("vehicle", 17, 27))


def test_unknown_field_names_field_and_template() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        render("Hi {frist_name}!", MergeContext(first_name="Ana"), template_name="first_text")
    err = caught.value
    assert err.field == "frist_name"
    assert err.template == "first_text"
    assert (err.line, err.column) == (1, 4)
    assert str(err) == (
        "first_text, line 1, column 4: unknown merge field '{frist_name}' "
        "(did you mean '{first_name}'?)"
    )
    assert isinstance(err, TemplateError)


def test_unknown_field_on_a_later_line_reports_that_line() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        render("Hello\n  see {colour}", MergeContext())
    assert (caught.value.line, caught.value.column) == (2, 7)
    assert "did you mean" not in str(caught.value)


def test_doubled_braces_are_literal() -> None:
    ctx = MergeContext(first_name="Ana")
    assert render("{{first_name}} is {first_name}", ctx).text == "{first_name} is Ana"
    assert render("a }} b {{", ctx).text == "a } b {"
    assert render("{{{first_name}}}", ctx).text == "{Ana}"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("Hi {first name}", 1, 4),
        ("Hi {", 1, 4),
        ("Hi }", 1, 4),
        ("ok\n{first_name", 2, 1),
        ("{}", 1, 1),
        ("{1st}", 1, 1),
    ],
)
def test_stray_braces_are_errors_with_position(text: str, line: int, column: int) -> None:
    with pytest.raises(TemplateTextError, match="literal brace") as caught:
        render(text, MergeContext(first_name="Ana"), template_name="t")
    assert (caught.value.line, caught.value.column) == (line, column)


def test_spaces_inside_braces_are_allowed() -> None:
    assert render("Hi { first_name }", MergeContext(first_name="Ana")).text == "Hi Ana"


def test_merged_values_are_inserted_literally_single_pass() -> None:
    ctx = MergeContext(first_name="{agent_name}", last_name="{{x}}", agent_name="Jordan")
    result = render("Hi {first_name} {last_name}, I'm {agent_name}", ctx)
    assert result.text == "Hi {agent_name} {{x}}, I'm Jordan"
    assert result.missing == ()


def test_render_rejects_wrong_types() -> None:
    with pytest.raises(TemplateError, match="MergeContext"):
        render("Hi", {"first_name": "Ana"})  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="must be a string"):
        render(None, MergeContext())  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="merge field 'first_name' must be text, got int"):
        MergeContext(first_name=3)  # type: ignore[arg-type]


def test_every_merge_field_has_a_context_value_and_a_label() -> None:
    assert list(MERGE_FIELDS) == [f.name for f in dataclasses.fields(MergeContext)]
    assert missing_marker("first_name") == "[first name?]"
    assert missing_marker("trade_in") == "[trade-in?]"
    with pytest.raises(TemplateError, match="unknown merge field 'nope'"):
        MergeContext().value("nope")


# -- building the context -------------------------------------------------------------------------


def test_merge_context_from_lead() -> None:
    ctx = full_context()
    assert ctx.first_name == "Maria"
    assert ctx.last_name == "Gonzalez"
    assert ctx.full_name == "Maria Gonzalez"
    assert ctx.vehicle == "2024 Toyota Camry SE"
    assert (ctx.vehicle_year, ctx.vehicle_make, ctx.vehicle_model) == ("2024", "Toyota", "Camry")
    assert ctx.stock_number == "T4411"
    assert ctx.trade_in == "2021 Honda Accord EX"
    assert ctx.trade_in_model == "Accord EX"
    assert (ctx.agent_name, ctx.agent_first_name) == ("Jordan Miller", "Jordan")
    assert ctx.agent_phone == "(312) 555-0142"
    assert ctx.dealership == "Lakeside Toyota"
    assert ctx.dealership_phone == "(312) 555-0100"
    assert ctx.dealership_address == "1200 Lake St, Chicago, IL 60601"
    assert ctx.dealership_website == "lakesidetoyota.example"
    assert ctx.source == "Autotrader"
    assert ctx.timeframe == "within 2 weeks"
    assert ctx.appointment_time == ""


def test_merge_context_without_vehicle_or_trade_leaves_them_missing() -> None:
    ctx = merge_context(
        make_lead(vehicles=(), trade_in=None, person=Person(" Ana\n", "")), STORE, "Jo", ""
    )
    assert (ctx.vehicle, ctx.vehicle_make, ctx.trade_in, ctx.trade_in_model) == ("", "", "", "")
    assert ctx.first_name == "Ana"
    result = render("Hi {first_name}, about the {vehicle} - {agent_phone}", ctx)
    assert result.text == "Hi Ana, about the [vehicle?] - [your phone?]"
    assert result.missing == ("vehicle", "agent_phone")


def test_feed_whitespace_is_collapsed() -> None:
    ctx = merge_context(make_lead(person=Person("Mary\tJo", "")), STORE, "  Jordan   Miller ", "")
    assert ctx.first_name == "Mary Jo"
    assert ctx.agent_name == "Jordan Miller"


def test_phone_formatting() -> None:
    assert format_phone("+1 312 555 0142") == "(312) 555-0142"
    assert format_phone("+44 20 7946 0958") == "+44 20 7946 0958"
    assert format_phone(" ext. 12 ") == "ext. 12"
    assert format_phone("") == ""


def test_appointment_in_the_store_zone_has_no_abbreviation() -> None:
    ctx = full_context(appointment_at=datetime(2025, 3, 4, 20, 0, tzinfo=UTC))
    assert ctx.appointment_time == "Tuesday, March 4 at 2:00 PM"
    assert ctx.appointment_date == "Tuesday, March 4"
    assert ctx.appointment_clock == "2:00 PM"


def test_appointment_in_another_customer_zone_names_the_zone() -> None:
    when = datetime(2025, 3, 4, 20, 0, tzinfo=UTC)
    ctx = full_context(appointment_at=when, customer_zone="America/Denver")
    assert ctx.appointment_time == "Tuesday, March 4 at 1:00 PM MST"
    ctx = full_context(appointment_at=when, customer_zone=ZoneInfo("America/Chicago"))
    assert ctx.appointment_clock == "2:00 PM"


@pytest.mark.parametrize(
    ("hour", "minute", "clock"),
    [
        (6, 0, "12:00 AM"),
        (6, 5, "12:05 AM"),
        (17, 59, "11:59 AM"),
        (18, 0, "12:00 PM"),
        (0, 0, "6:00 PM"),
    ],
)
def test_appointment_clock_edges(hour: int, minute: int, clock: str) -> None:
    # Chicago is UTC-6 in early March (before DST on March 9, 2025).
    ctx = full_context(appointment_at=datetime(2025, 3, 4, hour, minute, tzinfo=UTC))
    assert ctx.appointment_clock == clock


def test_appointment_across_dst_uses_the_local_offset() -> None:
    ctx = full_context(appointment_at=datetime(2025, 3, 10, 15, 30, tzinfo=UTC))
    assert ctx.appointment_time == "Monday, March 10 at 10:30 AM"


def test_naive_appointment_is_refused() -> None:
    with pytest.raises(TemplateError, match="naive"):
        full_context(appointment_at=datetime(2025, 3, 4, 14, 0))


def test_bad_inputs_to_merge_context_are_refused() -> None:
    with pytest.raises(TemplateError, match="unknown time zone 'Mars/Base'"):
        full_context(appointment_at=RECEIVED, customer_zone="Mars/Base")
    with pytest.raises(TemplateError, match="appointment_at must be a datetime"):
        full_context(appointment_at="tomorrow")
    with pytest.raises(TemplateError, match="agent_name must be text"):
        merge_context(make_lead(), STORE, None, "")  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="lead must be a Lead"):
        merge_context("lead", STORE, "Jo", "")  # type: ignore[arg-type]


# -- shipped templates ----------------------------------------------------------------------------


def test_shipped_library_has_the_guide_templates(library: TemplateLibrary) -> None:
    for template_id in (
        "ack_email",
        "personal_email",
        "first_text",
        "second_text",
        "third_text",
        "appointment_confirmation_text",
        "reminder_2h_text",
        "no_show_text",
        "no_show_email",
        "opt_out_confirmation",
        "help_reply",
    ):
        assert template_id in library
    assert len(library) == 19


def test_for_step_filters_by_channel_and_kind(library: TemplateLibrary) -> None:
    assert [t.id for t in library.for_step(Channel.TEXT, TemplateKind.FIRST_TEXT)] == ["first_text"]
    assert [t.id for t in library.for_step("text", "follow_up")] == ["second_text", "third_text"]
    assert [t.id for t in library.for_step("text", "third_text")] == ["third_text"]
    assert [t.id for t in library.for_step("email", "acknowledgment")] == ["ack_email"]
    assert [t.id for t in library.for_step("text", "appointment_set")] == [
        "appointment_confirmation_text"
    ]
    assert library.for_step(Channel.CALL, "first_text") == ()
    with pytest.raises(TemplateError, match="unknown channel 'fax'"):
        library.for_step("fax", "first_text")


def test_first_text_renders_exactly(library: TemplateLibrary) -> None:
    message = render_template(library.get("first_text"), full_context())
    assert message.body.text == (
        "Hi Maria, this is Jordan from Lakeside Toyota. I have the details on the "
        "2024 Toyota Camry SE you asked about. When's a good time to chat? (312) 555-0142 "
        "Reply STOP to opt out"
    )
    assert message.subject is None
    assert message.sms is not None
    assert (message.sms.encoding, message.sms.characters, message.sms.segments) == (
        SmsEncoding.GSM_7,
        175,
        2,
    )


def test_opt_out_confirmation_is_plain(library: TemplateLibrary) -> None:
    message = render_template(library.get("opt_out_confirmation"), full_context())
    assert message.body.text == (
        "You're unsubscribed from Lakeside Toyota texts. No more messages will be sent."
    )
    assert message.sms is not None and message.sms.segments == 1


def test_first_messages_name_the_brand_and_opt_out(library: TemplateLibrary) -> None:
    for template in (*library.for_step("text", "first_text"), library.get("ack_text")):
        assert "{dealership}" in template.body
        assert "Reply STOP to opt out" in template.body


def test_every_shipped_template_renders_complete_and_short(library: TemplateLibrary) -> None:
    ctx = full_context(appointment_at=datetime(2025, 3, 4, 20, 0, tzinfo=UTC))
    for template in library.templates:
        message = render_template(template, ctx)
        assert message.complete, (template.id, message.missing)
        assert "[" not in message.body.text, template.id
        if template.channel is Channel.TEXT:
            assert message.sms is not None
            assert message.sms.encoding is SmsEncoding.GSM_7, template.id
            assert message.sms.segments <= 2, template.id
            if template.kind in (TemplateKind.OPT_OUT_CONFIRMATION, TemplateKind.HELP):
                assert message.sms.segments == 1
        else:
            assert message.subject is not None and message.subject.text, template.id


def test_email_renders_subject_and_reports_missing_across_both(library: TemplateLibrary) -> None:
    ctx = merge_context(make_lead(vehicles=()), STORE, "Jordan Miller", "312-555-0142")
    message = render_template(library.get("ack_email"), ctx)
    assert message.subject is not None
    assert message.subject.text == "We received your request about the [vehicle?]"
    assert message.missing == ("vehicle",)
    assert not message.complete


def test_library_get_unknown_id(library: TemplateLibrary) -> None:
    with pytest.raises(TemplateError, match="no template with id 'nope'"):
        library.get("nope")


# -- parsing and broken files ---------------------------------------------------------------------

GOOD = """\
[[template]]
id = "t1"
channel = "text"
kind = "follow_up"
steps = ["second_text"]
body = \"\"\"
Hi {first_name},
about the {vehicle}.
\"\"\"
"""


def test_parse_templates_reads_fields() -> None:
    (template,) = parse_templates(GOOD, "resources/templates/x.toml")
    assert template == Template(
        id="t1",
        name="t1",
        channel=Channel.TEXT,
        kind=TemplateKind.FOLLOW_UP,
        body="Hi {first_name},\nabout the {vehicle}.",
        steps=("second_text",),
        fields=("first_name", "vehicle"),
        source="resources/templates/x.toml",
        line=1,
    )


BODY_TYPO = GOOD.replace("about the {vehicle}", "about the {vehicel}")
SUBJECT_TYPO = """\
[[template]]
id = "e1"
channel = "email"
kind = "follow_up"
subject = "About {vehicle_modle}"
body = "Hi"
"""
CONTINUED_TYPO = """\
[[template]]
id = "t1"
channel = "text"
kind = "follow_up"
body = \"\"\"
Hi {first_name}, \\
about the {vehicel}.
\"\"\"
"""
STRAY_BRACE = GOOD.replace("Hi {first_name},", "Hi {first_name,")


def _template(**overrides: str) -> str:
    fields = {
        "id": '"t1"',
        "channel": '"text"',
        "kind": '"follow_up"',
        "body": '"Hi {first_name}"',
    }
    fields.update(overrides)
    lines = ["[[template]]"] + [f"{k} = {v}" for k, v in fields.items() if v]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (BODY_TYPO, 8, "template[0].body", "unknown merge field '{vehicel}'"),
        (SUBJECT_TYPO, 5, "template[0].subject", "did you mean '{vehicle_model}'"),
        (CONTINUED_TYPO, 7, "template[0].body", "unknown merge field '{vehicel}'"),
        (STRAY_BRACE, 7, "template[0].body", "stray '{'"),
        (_template(channel='"call"'), 3, "template[0].channel", "'text' or 'email'"),
        (_template(kind='"promo"'), 4, "template[0].kind", "unknown kind 'promo'"),
        (_template(id='"Bad Id"'), 2, "template[0].id", "lower-case"),
        (_template(body=""), 1, "template[0]", "missing required field 'body'"),
        (_template(body='"  "'), 5, "template[0].body", "body is empty"),
        (_template(body="3"), 5, "template[0].body", "must be str"),
        (_template(subject='"Hi"'), 6, "template[0].subject", "a text template has no subject"),
        (_template(channel='"email"'), 1, "template[0].subject", "needs a subject"),
        (_template(steps="[1]"), 6, "template[0].steps[0]", "non-empty string"),
        (_template(colour='"red"'), 6, "template[0].colour", "unknown field 'colour'"),
        (
            _template(kind='"first_text"', body='"Hi, {dealership} here"'),
            5,
            "template[0].body",
            "how to opt out",
        ),
        (
            _template(kind='"first_text"', body='"Hi. Reply STOP to opt out"'),
            5,
            "template[0].body",
            "name the brand",
        ),
        (
            _template(kind='"opt_out_confirmation"', body='"Bye from {dealership}, {first_name}"'),
            5,
            "template[0].body",
            "remove {first_name}",
        ),
        (
            _template(kind='"help"', channel='"email"', subject='"s"', body='"{dealership} STOP"'),
            3,
            "template[0].channel",
            "is a text",
        ),
        (GOOD + GOOD, 11, "template[1].id", "duplicate template id 't1' (first at line 1)"),
        ("", None, "template", "no [[template]] tables"),
        ("template = 3\n", 1, "template", "must be an array"),
        ("[[template]]\nid = \n", 2, "", "not valid TOML"),
        ("[other]\n", 1, "other", "unknown field 'other'"),
    ],
)
def test_broken_template_files_name_file_line_and_field(
    text: str, line: int | None, field: str, message: str
) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_templates(text, "resources/templates/broken.toml")
    err = caught.value
    assert err.source == "resources/templates/broken.toml"
    assert err.line == line
    assert err.field == field
    assert message in str(err)


def test_duplicate_ids_across_files_are_refused() -> None:
    with pytest.raises(ResourceError, match=r"duplicate template id 't1' \(also in a.toml:1\)"):
        load_templates([(GOOD, "a.toml"), (GOOD, "b.toml")])


# -- properties -----------------------------------------------------------------------------------

ANY_VALUE = st.text(max_size=40)
CONTEXTS = st.builds(MergeContext, **dict.fromkeys(MERGE_FIELDS, ANY_VALUE))


@settings(max_examples=200, deadline=None)
@given(CONTEXTS)
def test_render_inserts_every_value_literally(ctx: MergeContext) -> None:
    template = "|".join("{" + name + "}" for name in MERGE_FIELDS)
    result = render(template, ctx)
    expected = [
        getattr(ctx, name) if getattr(ctx, name).strip() else missing_marker(name)
        for name in MERGE_FIELDS
    ]
    assert result.text == "|".join(expected)
    assert result.missing == tuple(n for n in MERGE_FIELDS if not getattr(ctx, n).strip())
    for span in result.spans:
        assert result.text[span.start : span.end] == missing_marker(span.field)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("{}ab _\n") | st.characters(), max_size=60), CONTEXTS)
def test_render_either_renders_or_raises_template_error(text: str, ctx: MergeContext) -> None:
    try:
        result = render(text, ctx)
    except TemplateError:
        return
    assert isinstance(result.text, str)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60).filter(str.strip))
def test_a_value_with_braces_never_expands(value: str) -> None:
    ctx = MergeContext(first_name=value, agent_name="AGENT")
    assert render("<{first_name}>", ctx).text == f"<{value}>"
