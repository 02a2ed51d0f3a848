from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.compliance import BlockCode
from app.domain.leads import Address, Lead, LeadSource, Person, SourceType
from app.domain.phones import PhoneKind, make_phone
from app.rulebook import load_rulebook
from app.telephony.demo import DemoDialer
from app.telephony.guard import DialBlocked, check_dial, guarded_dial
from app.telephony.model import DialRequest, TelephonyError

RULES = load_rulebook()
TUESDAY_10AM_CHICAGO = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


def lead(
    number: str = "+13125550123", state: str = "IL", zip_code: str = "60614", **extra: object
) -> Lead:
    return Lead(
        id="lead-1",
        store_id="lakeside",
        received_at=TUESDAY_10AM_CHICAGO - timedelta(hours=1),
        person=Person("Pat", "Lee"),
        source=LeadSource("web", SourceType.FIRST_PARTY),
        phones=(make_phone(number, PhoneKind.CELL),),
        address=Address(state=state, postal_code=zip_code),
        **extra,  # type: ignore[arg-type]
    )


def check(subject: Lead, now: datetime, history: list[Activity] | None = None, **kw: object):
    return check_dial(
        RULES.calling_rules,
        subject,
        history or [],
        now,
        zip_table=RULES.zip_table,
        fallback_zone="America/Chicago",
        **kw,  # type: ignore[arg-type]
    )


def test_allowed_in_the_customers_daytime() -> None:
    decision = check(lead(), TUESDAY_10AM_CHICAGO)
    assert decision.allowed
    assert decision.address == "+13125550123"


def test_quiet_hours_block_with_the_reason_and_when_it_opens() -> None:
    late = datetime(2025, 6, 4, 3, 30, tzinfo=UTC)  # 22:30 in Chicago
    decision = check(lead(), late)
    assert not decision.allowed
    assert BlockCode.QUIET_HOURS in decision.codes
    assert "quiet hours" in decision.message
    assert decision.next_allowed_at is not None
    assert decision.next_allowed_at.hour == 8


def test_do_not_call_blocks_and_says_so() -> None:
    decision = check(lead(do_not_call=True), TUESDAY_10AM_CHICAGO)
    assert not decision.allowed
    assert BlockCode.DO_NOT_CALL in decision.codes
    scrubbed = check(lead(), TUESDAY_10AM_CHICAGO, dnc_numbers=frozenset({"+13125550123"}))
    assert BlockCode.DO_NOT_CALL in scrubbed.codes


def test_florida_cap_of_three_calls_in_24_hours() -> None:
    florida = lead("+13055550123", "FL", "33101")
    calls = [
        Activity(
            id=str(uuid.uuid4()),
            lead_id="lead-1",
            kind=ActivityKind.CALL,
            at=TUESDAY_10AM_CHICAGO - timedelta(hours=h),
            direction=Direction.OUTBOUND,
            phone="+13055550123",
            answered=False,
        )
        for h in (1, 2, 3)
    ]
    decision = check(florida, TUESDAY_10AM_CHICAGO, calls)
    assert not decision.allowed
    assert BlockCode.CALL_CAP in decision.codes
    assert check(florida, TUESDAY_10AM_CHICAGO, calls[:2]).allowed


def test_guarded_dial_refuses_a_blocked_call_and_dials_nothing() -> None:
    dialer = DemoDialer(seed=1, speed=1000)
    blocked = check(lead(do_not_call=True), TUESDAY_10AM_CHICAGO)

    async def scenario() -> None:
        with pytest.raises(DialBlocked, match="do-not-call") as caught:
            await guarded_dial(dialer, DialRequest("+13125550123"), blocked)
        assert caught.value.decision is blocked
        assert dialer.active_call is None
        allowed = check(lead(), TUESDAY_10AM_CHICAGO)
        with pytest.raises(TelephonyError, match="check again"):
            await guarded_dial(dialer, DialRequest("+13125550199"), allowed)
        handle = await guarded_dial(dialer, DialRequest.for_lead(lead()), allowed)
        assert handle.request.number == "+13125550123"
        await dialer.close()

    asyncio.run(scenario())


def test_for_lead_needs_a_number() -> None:
    with pytest.raises(TelephonyError, match="no number"):
        DialRequest.for_lead(lead("not a number"))
    with pytest.raises(TelephonyError, match=r"E\.164"):
        DialRequest("312-555-0123")
