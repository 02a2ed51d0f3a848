"""Lead intake end to end: JSON and ADF in, stored, scored, routed, clocked; bad documents out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from app.domain.codec import lead_from_dict
from server.db import ActivityRow, JobRow, LeadRow, RawPayloadRow
from tests.server.conftest import Seeded
from tests.server.lead_helpers import (
    AFTER_HOURS,
    IN_HOURS,
    adf_doc,
    db,
    key_headers,
    lead_body,
    pin,
    post_adf,
    post_lead,
)

SAMPLES = Path(__file__).parent / "intake" / "samples"


def _count(seeded: Seeded, model: type) -> int:
    with db(seeded) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _payloads(seeded: Seeded) -> list[RawPayloadRow]:
    with db(seeded) as session:
        return list(session.scalars(select(RawPayloadRow).order_by(RawPayloadRow.id)))


def test_json_lead_is_stored_normalized_scored_and_clocked(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = post_lead(seeded, lead_body())
    assert response.status_code == 201, response.text
    body = response.json()
    [out] = body["leads"]
    # 20 local ZIP + 5 full address + 5 Cars.com + 20 within 7 days + 10 specific vehicle.
    assert (out["score"], out["tier"], out["grade"]) == (60, "high", "A")
    assert out["merged_into"] is None
    assert out["assigned_agent_id"] is None  # nobody on the floor: the pool
    assert datetime.fromisoformat(out["due_at"]) == IN_HOURS + timedelta(minutes=5)

    with db(seeded) as session:
        row = session.get(LeadRow, out["lead_id"])
        assert row is not None
        assert row.store_id == "lakeside"
        assert row.phone_e164 == "+13125552368"
        assert row.email == "maria.lopez@example.com"
        assert (row.score, row.tier, row.grade, row.version) == (60, "high", "A", 1)
        assert row.received_at == IN_HOURS
        lead = lead_from_dict(row.data)
        assert lead.address.state == "IL"
        assert lead.source.name == "Cars.com"  # the API key's name
        assert lead.source.type.value == "third_party"
        jobs = {j.kind: j for j in session.scalars(select(JobRow))}
        assert jobs["ack_email"].dedupe_key == f"ack:{row.id}"
        assert jobs["ack_email"].due_at == IN_HOURS + timedelta(seconds=30)
        assert jobs["escalate"].dedupe_key == f"escalate:{row.id}"
        assert jobs["escalate"].due_at == IN_HOURS + timedelta(minutes=5)
        kinds = [a.kind for a in session.scalars(select(ActivityRow))]
        assert kinds == ["score_change"]
    [payload] = _payloads(seeded)
    assert payload.outcome == "accepted"
    assert payload.lead_ids == out["lead_id"]
    assert payload.id == body["payload_id"]
    assert b"Maria" in payload.body


def test_after_hours_lead_is_due_30_minutes_after_opening(seeded: Seeded) -> None:
    pin(seeded, AFTER_HOURS)
    out = post_lead(seeded, lead_body()).json()["leads"][0]
    # Thursday 09:00 CST = 15:00 UTC, plus 30 minutes.
    assert datetime.fromisoformat(out["due_at"]) == datetime(2026, 3, 5, 15, 30, tzinfo=UTC)


def test_due_at_uses_the_stores_own_time_zone(seeded: Seeded) -> None:
    # 14:30 UTC is 09:30 in New York (riverside open) but 08:30 in Chicago (lakeside closed).
    pin(seeded, datetime(2026, 3, 4, 14, 30, tzinfo=UTC))
    river = post_lead(seeded, lead_body(), key=seeded.other_api_key).json()["leads"][0]
    lake = post_lead(seeded, lead_body()).json()["leads"][0]
    assert datetime.fromisoformat(river["due_at"]) == datetime(2026, 3, 4, 14, 35, tzinfo=UTC)
    assert datetime.fromisoformat(lake["due_at"]) == datetime(2026, 3, 4, 15, 30, tzinfo=UTC)


def test_no_ack_job_without_an_email(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    assert post_lead(seeded, lead_body(emails=[])).status_code == 201
    with db(seeded) as session:
        assert [j.kind for j in session.scalars(select(JobRow))] == ["escalate"]


def test_manager_enters_a_lead_by_hand_agents_and_strangers_cannot(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = seeded.client.post("/v1/leads", headers=seeded.headers("mia"), json=lead_body())
    assert response.status_code == 201
    # Manual entry is a phone-up (16) instead of Cars.com (5).
    assert response.json()["leads"][0]["score"] == 71
    admin = seeded.client.post(
        "/v1/leads", headers=seeded.headers("root"), json=lead_body(emails=[], phones=[])
    )
    assert admin.status_code == 422  # allowed in, refused for the content
    agent = seeded.client.post("/v1/leads", headers=seeded.headers("ana"), json=lead_body())
    assert agent.status_code == 403
    assert seeded.client.post("/v1/leads", json=lead_body()).status_code == 401
    adf_agent = seeded.client.post(
        "/v1/leads/adf",
        headers={**seeded.headers("ben"), "Content-Type": "application/xml"},
        content=adf_doc(),
    )
    assert adf_agent.status_code == 403
    assert _count(seeded, LeadRow) == 1


def test_source_given_by_the_provider_is_kept(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    body = lead_body(source={"name": "Dealer website"})
    out = post_lead(seeded, body).json()["leads"][0]
    with db(seeded) as session:
        row = session.get(LeadRow, out["lead_id"])
        assert row is not None
        assert row.data["source"] == {"name": "Dealer website", "type": "first_party"}


def test_array_of_leads_is_accepted_as_one_document(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    second = lead_body(
        person={"first_name": "Wei", "last_name": "Zhang"},
        phones=[{"number": "773-555-0199"}],
        emails=[{"address": "wei@example.com"}],
    )
    response = post_lead(seeded, [lead_body(), second])
    assert response.status_code == 201
    assert len(response.json()["leads"]) == 2
    assert _count(seeded, LeadRow) == 2
    assert len(_payloads(seeded)) == 1


def test_sql_looking_and_non_latin_names_are_stored_literally(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    person = {"first_name": "Robert'); DROP TABLE leads;--", "last_name": "Ångström-李小龍 محمد"}
    out = post_lead(seeded, lead_body(person=person)).json()["leads"][0]
    adf = post_adf(seeded, adf_doc(first="' OR 1=1 --", last="Ñúñez 王", email="x@example.org"))
    assert adf.status_code == 201, adf.text
    with db(seeded) as session:
        row = session.get(LeadRow, out["lead_id"])
        assert row is not None
        assert row.data["person"]["first_name"] == "Robert'); DROP TABLE leads;--"
        assert row.data["person"]["last_name"] == "Ångström-李小龍 محمد"
        other = session.get(LeadRow, adf.json()["leads"][0]["lead_id"])
        assert other is not None
        assert other.data["person"]["first_name"] == "' OR 1=1 --"
        assert other.data["person"]["last_name"] == "Ñúñez 王"
        assert session.scalar(select(func.count()).select_from(LeadRow)) == 2


def test_invalid_phone_is_kept_unreachable_with_a_warning(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    body = lead_body(phones=[{"number": "555-01"}])
    out = post_lead(seeded, body).json()["leads"][0]
    assert out["warnings"] == [
        "phones[0].number: '555-01' is not a valid phone number; kept, unreachable"
    ]
    with db(seeded) as session:
        row = session.get(LeadRow, out["lead_id"])
        assert row is not None and row.phone_e164 is None
        assert row.data["phones"][0]["raw"] == "555-01"


# --- Rejections ----------------------------------------------------------------------------------


def _assert_rejected_and_nothing_stored(seeded: Seeded, response_problems: list[str]) -> None:
    assert _count(seeded, LeadRow) == 0
    assert _count(seeded, ActivityRow) == 0
    assert _count(seeded, JobRow) == 0
    [payload] = _payloads(seeded)
    assert payload.outcome == "rejected"
    assert payload.detail == "\n".join(response_problems)
    assert payload.lead_ids == ""


def test_rejection_names_every_problem_and_stores_only_the_raw_payload(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    good = lead_body()
    bad_email = lead_body(emails=[{"address": "not-an-address"}], phones=[])
    unknown = lead_body(favourite_colour="red")
    no_contact = lead_body(phones=[], emails=[])
    nameless = lead_body(person={"first_name": ""})
    response = post_lead(seeded, [good, bad_email, unknown, no_contact, nameless])
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert problems == [
        "[1].emails[0].address: email address 'not-an-address' has no '@'",
        "[2].favourite_colour: unknown field",
        "[3].phones: no phone or e-mail to reach the customer",
        "[4].person: a first, last or business name is required",
    ]
    _assert_rejected_and_nothing_stored(seeded, problems)


def test_wrong_types_and_out_of_range_values_name_the_field(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    body = lead_body(vehicles=[{"year": 1800, "make": "Ford"}], timeframe={"within_days": "soon"})
    response = post_lead(seeded, body)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert problems[0].startswith("vehicles[0].year: Input should be greater than or equal to 1900")
    assert problems[1].startswith("timeframe.within_days: Input should be a valid integer")
    _assert_rejected_and_nothing_stored(seeded, problems)


def test_malformed_json_empty_body_nan_and_nul(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    headers = {**key_headers(seeded.api_key), "Content-Type": "application/json"}
    cases = {
        b'{"person": ': "body: not valid JSON (Expecting value at line 1 column 12)",
        b"": "body: empty; send a JSON lead object",
        b'"just a string"': "body: must be a JSON object (one lead) or an array of leads",
        b'{"timeframe": {"within_days": NaN}}': "body: not valid JSON (NaN is not a JSON number)",
        b'{"person": {"first_name": "a\\u0000b"}}': "person.first_name: contains a NUL character",
        b"\xff\xfe{}": "body: not UTF-8 (byte 0)",
    }
    for raw, problem in cases.items():
        response = seeded.client.post("/v1/leads", headers=headers, content=raw)
        assert response.status_code == 422, raw
        assert response.json()["problems"] == [problem], raw
    assert _count(seeded, LeadRow) == 0
    assert [p.outcome for p in _payloads(seeded)] == ["rejected"] * len(cases)


def test_wrong_content_type_is_415_and_kept_for_audit(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    as_text = seeded.client.post(
        "/v1/leads",
        headers={**key_headers(seeded.api_key), "Content-Type": "text/plain"},
        content=b'{"person": {}}',
    )
    assert as_text.status_code == 415
    assert "application/json" in as_text.json()["problems"][0]
    json_to_adf = post_adf(seeded, b'{"person": {}}', content_type="application/json")
    assert json_to_adf.status_code == 415
    assert json_to_adf.json()["problems"] == [
        "content-type: 'application/json'; send application/x-adf+xml or application/xml "
        "or text/xml"
    ]
    assert _count(seeded, LeadRow) == 0
    assert [(p.outcome, p.content_type) for p in _payloads(seeded)] == [
        ("rejected", "text/plain"),
        ("rejected", "application/json"),
    ]


def test_oversized_body_is_413_before_parsing(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    limit = 1_000_000
    big = b"<adf>" + b" " * limit + b"</adf>"
    declared = post_adf(seeded, big)
    assert declared.status_code == 413
    assert declared.json()["problems"] == [f"body: {len(big)} bytes; the limit is {limit}"]

    def chunks() -> object:
        # No Content-Length: the server must count while streaming.
        yield b'{"person": {"first_name": "' + b"x" * 600_000
        yield b"y" * 600_000
        yield b'"}}'

    streamed = seeded.client.post(
        "/v1/leads",
        headers={**key_headers(seeded.api_key), "Content-Type": "application/json"},
        content=chunks(),  # type: ignore[arg-type]
    )
    assert streamed.status_code == 413
    assert streamed.json()["problems"] == [f"body: more than {limit} bytes; the limit is {limit}"]
    payloads = _payloads(seeded)
    assert [p.outcome for p in payloads] == ["rejected", "rejected"]
    assert payloads[0].body == b""  # refused from the header alone
    assert payloads[1].body.startswith(b'{"person"') and len(payloads[1].body) == 4096
    assert _count(seeded, LeadRow) == 0


# --- ADF ----------------------------------------------------------------------------------------


def test_adf_samples_end_to_end(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = post_adf(seeded, (SAMPLES / "multi_prospect.xml").read_bytes())
    assert response.status_code == 201, response.text
    leads = response.json()["leads"]
    assert len(leads) >= 2
    with db(seeded) as session:
        rows = [session.get(LeadRow, out["lead_id"]) for out in leads]
        assert all(row is not None and row.store_id == "lakeside" for row in rows)
        for out, row in zip(leads, rows, strict=True):
            assert row is not None
            assert (row.score, row.tier, row.grade) == (out["score"], out["tier"], out["grade"])
            assert row.due_at == IN_HOURS + timedelta(minutes=5)
    [payload] = _payloads(seeded)
    assert payload.outcome == "accepted"
    assert payload.lead_ids == ",".join(out["lead_id"] for out in leads)
    assert payload.body == (SAMPLES / "multi_prospect.xml").read_bytes()


def test_adf_lead_fields_and_score(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = post_adf(seeded, adf_doc(phone="312-555-2368"), content_type="application/x-adf+xml")
    assert response.status_code == 201, response.text
    [out] = response.json()["leads"]
    # 3 TrueCar + 15 within 30 days + 10 specific vehicle; no address.
    assert (out["score"], out["tier"], out["grade"]) == (28, "medium", "A")
    with db(seeded) as session:
        row = session.get(LeadRow, out["lead_id"])
        assert row is not None
        assert row.phone_e164 == "+13125552368"
        assert row.email == "hannah.brooks@example.com"
        assert row.data["source"] == {"name": "TrueCar", "type": "third_party"}
        assert row.data["comments"] == "Looking to buy soon"


def test_latin1_adf_is_read(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = post_adf(seeded, (SAMPLES / "latin1.xml").read_bytes(), content_type="text/xml")
    assert response.status_code == 201, response.text


def test_adf_rejections_store_nothing(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE adf [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<adf><prospect><customer><contact><name>&x;</name></contact></customer></prospect></adf>"
    )
    assert post_adf(seeded, xxe).status_code == 422
    unreachable = adf_doc(email="")
    two = unreachable.replace(b"</adf>", b"") + b"</adf>"
    response = post_adf(seeded, two)
    assert response.status_code == 422
    assert any("no phone or e-mail" in p for p in response.json()["problems"])
    # One good prospect and one bad one: the whole document is refused.
    good = adf_doc()
    mixed = good.replace(
        b"</adf>",
        b"<prospect><customer><contact><name>No Way</name></contact></customer></prospect></adf>",
    )
    bad = post_adf(seeded, mixed)
    assert bad.status_code == 422
    assert bad.json()["problems"][0].startswith("prospect 2: no phone or e-mail")
    assert post_adf(seeded, b"<adf><prospect>").status_code == 422
    assert _count(seeded, LeadRow) == 0
    assert [p.outcome for p in _payloads(seeded)] == ["rejected"] * 4


# --- Duplicates -----------------------------------------------------------------------------------


def _activities(seeded: Seeded, lead_id: str) -> list[ActivityRow]:
    with db(seeded) as session:
        return list(
            session.scalars(
                select(ActivityRow).where(ActivityRow.lead_id == lead_id).order_by(ActivityRow.at)
            )
        )


def test_same_phone_within_the_window_merges(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    first = post_lead(seeded, lead_body()).json()["leads"][0]
    pin(seeded, IN_HOURS + timedelta(days=29))
    again = lead_body(
        person={"first_name": "Maria", "last_name": "Lopez"},
        emails=[{"address": "maria.work@example.com"}],
        phones=[{"number": "+1 312 555 2368"}],
        vehicles=[{"year": 2025, "make": "Toyota", "model": "Tacoma"}],
        comments="Also interested in a Tacoma",
    )
    out = post_lead(seeded, again).json()["leads"][0]
    assert out["merged_into"] == first["lead_id"] == out["lead_id"]
    assert _count(seeded, LeadRow) == 1
    with db(seeded) as session:
        row = session.get(LeadRow, first["lead_id"])
        assert row is not None
        assert row.version == 2
        assert row.received_at == IN_HOURS  # the original receipt stays
        models = [v["model"] for v in row.data["vehicles"]]
        assert models == ["RAV4", "Tacoma"]
        assert [e["address"] for e in row.data["emails"]] == [
            "maria.lopez@example.com",
            "maria.work@example.com",
        ]
        assert row.data["comments"] == "Is it still available?\n\nAlso interested in a Tacoma"
        assert session.scalar(select(func.count()).select_from(JobRow)) == 2  # no new jobs
    notes = [a.data["body"] for a in _activities(seeded, first["lead_id"]) if a.kind == "note"]
    assert notes == ["Duplicate lead from Cars.com merged"]


def test_same_email_any_case_merges(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    first = post_lead(seeded, lead_body(phones=[])).json()["leads"][0]
    out = post_lead(
        seeded, lead_body(phones=[], emails=[{"address": "Maria.Lopez@EXAMPLE.com"}])
    ).json()["leads"][0]
    assert out["merged_into"] == first["lead_id"]
    assert _count(seeded, LeadRow) == 1


def test_outside_the_window_is_a_new_lead(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    first = post_lead(seeded, lead_body()).json()["leads"][0]
    pin(seeded, IN_HOURS + timedelta(days=30, seconds=1))
    out = post_lead(seeded, lead_body()).json()["leads"][0]
    assert out["merged_into"] is None
    assert out["lead_id"] != first["lead_id"]
    assert _count(seeded, LeadRow) == 2


def test_adf_resend_merges_whatever_its_age(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    first = post_adf(seeded, adf_doc()).json()["leads"][0]
    pin(seeded, IN_HOURS + timedelta(days=90))
    resent = post_adf(seeded, adf_doc(status="resend", model="Corolla")).json()["leads"][0]
    assert resent["merged_into"] == first["lead_id"]
    not_resent = post_adf(seeded, adf_doc(model="Prius")).json()["leads"][0]
    # Same e-mail, 90 days later, not a resend: a new lead. The resend merged into the newest.
    assert not_resent["merged_into"] is None
    notes = [a.data["body"] for a in _activities(seeded, first["lead_id"]) if a.kind == "note"]
    assert notes == ["Duplicate lead from TrueCar merged (the provider marked it a resend)"]
    assert _count(seeded, LeadRow) == 2


def test_duplicates_inside_one_document_merge(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    response = post_lead(seeded, [lead_body(), lead_body(comments="second copy")])
    first, second = response.json()["leads"]
    assert second["merged_into"] == first["lead_id"]
    assert _count(seeded, LeadRow) == 1


def test_stores_never_merge_into_each_other(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    lake = post_lead(seeded, lead_body()).json()["leads"][0]
    river = post_lead(seeded, lead_body(), key=seeded.other_api_key).json()["leads"][0]
    assert river["merged_into"] is None
    assert river["lead_id"] != lake["lead_id"]
    with db(seeded) as session:
        row = session.get(LeadRow, river["lead_id"])
        assert row is not None and row.store_id == "riverside"


def test_merge_rescores_and_never_clears_an_opt_out(seeded: Seeded) -> None:
    pin(seeded, IN_HOURS)
    first = post_lead(seeded, lead_body(timeframe=None, vehicles=[])).json()["leads"][0]
    assert first["score"] == 30  # 20 local ZIP + 5 address + 5 Cars.com
    with db(seeded) as session:
        row = session.get(LeadRow, first["lead_id"])
        assert row is not None
        row.data = {**row.data, "opted_out_at": IN_HOURS.isoformat()}
    out = post_lead(seeded, lead_body()).json()["leads"][0]
    assert out["merged_into"] == first["lead_id"]
    assert out["score"] == 60
    with db(seeded) as session:
        row = session.get(LeadRow, first["lead_id"])
        assert row is not None
        assert row.score == 60
        assert row.data["opted_out_at"] == IN_HOURS.isoformat()
    kinds = [a.kind for a in _activities(seeded, first["lead_id"])]
    assert kinds.count("score_change") == 2
