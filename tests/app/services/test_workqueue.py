from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.demo.generator import DEMO_STORE
from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.leads import Email, Lead, LeadSource, Person, SourceType, Vehicle
from app.domain.phones import PhoneKind, make_phone
from app.domain.priority import WorkKind
from app.rulebook import Rulebook, load_rulebook
from app.services.workqueue import WorkQueue

# Wednesday 2026-11-25 11:00 in Chicago: the store is open.
NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Rulebook:
    return load_rulebook()


def _lead(lead_id: str, minutes_ago: int, *, phone: bool = True) -> Lead:
    return Lead(
        id=lead_id,
        store_id=DEMO_STORE.id,
        received_at=NOW - timedelta(minutes=minutes_ago),
        person=Person("Maria", f"Lopez-{lead_id}"),
        source=LeadSource("Dealer website", SourceType.FIRST_PARTY),
        phones=(make_phone("(312) 867-5309", PhoneKind.CELL),) if phone else (),
        emails=(Email(f"maria.{lead_id}@example.com"),),
        vehicles=(Vehicle(2026, "Toyota", "Camry", "SE"),),
    )


def _call(lead: Lead, minutes_after: int, *, answered: bool = False) -> Activity:
    return Activity(
        f"call-{lead.id}-{minutes_after}",
        lead.id,
        ActivityKind.CALL,
        lead.received_at + timedelta(minutes=minutes_after),
        direction=Direction.OUTBOUND,
        phone="+13128675309",
        answered=answered,
    )


def test_new_leads_count_down_to_their_five_minute_deadline(rules: Rulebook) -> None:
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(_lead("a", 1), []), (_lead("b", 3), [])], NOW)
    items = queue.items(NOW)
    assert [i.lead_id for i in items] == ["b", "a"]  # the older one is due first
    assert items[0].kind is WorkKind.NEW_LEAD
    assert items[0].due_at == NOW + timedelta(minutes=2)
    assert items[0].action == "Call #1"


def test_lead_without_a_phone_starts_with_a_personal_email(rules: Rulebook) -> None:
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(_lead("a", 1, phone=False), [])], NOW)
    (item,) = queue.items(NOW)
    assert item.action == "Email #1"


def test_a_waiting_customer_reply_goes_above_new_leads(rules: Rulebook) -> None:
    worked = _lead("w", 120)
    reply = Activity(
        "r1",
        "w",
        ActivityKind.TEXT,
        NOW - timedelta(minutes=1),
        direction=Direction.INBOUND,
        body="Can you call me after 5?",
    )
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(_lead("n", 1), []), (worked, [_call(worked, 3), reply])], NOW)
    items = queue.items(NOW)
    assert [i.kind for i in items] == [WorkKind.CUSTOMER_REPLY, WorkKind.NEW_LEAD]
    assert "Can you call me after 5?" in items[0].detail


def test_after_a_first_call_the_cadence_step_is_next(rules: Rulebook) -> None:
    lead = _lead("c", 30)
    disposition = Activity(
        "d1",
        "c",
        ActivityKind.DISPOSITION,
        lead.received_at + timedelta(minutes=4),
        disposition="no_answer",
        flags=DispositionFlag.ATTEMPT,
    )
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(lead, [_call(lead, 3), disposition])], NOW)
    (item,) = queue.items(NOW)
    assert item.kind is WorkKind.FOLLOW_UP
    assert item.action != "Call #1"


def test_opted_out_and_closed_leads_leave_the_queue(rules: Rulebook) -> None:
    lead = _lead("o", 30)
    opt_out = Activity("x", "o", ActivityKind.OPT_OUT, NOW - timedelta(minutes=5), body="STOP")
    sold = _lead("s", 60)
    sold_disposition = Activity(
        "y",
        "s",
        ActivityKind.DISPOSITION,
        NOW - timedelta(minutes=10),
        disposition="sold",
        flags=DispositionFlag.ATTEMPT | DispositionFlag.HUMAN_CONTACT | DispositionFlag.SOLD,
    )
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(lead, [opt_out]), (sold, [_call(sold, 2, answered=True), sold_disposition])], NOW)
    assert queue.items(NOW) == []


def test_search_by_name_phone_digits_and_vehicle(rules: Rulebook) -> None:
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(_lead("a", 1), []), (_lead("b", 2, phone=False), [])], NOW)
    assert [i.lead_id for i in queue.items(NOW, search="lopez-a")] == ["a"]
    assert [i.lead_id for i in queue.items(NOW, search="867-5309")] == ["a"]
    assert len(queue.items(NOW, search="camry")) == 2
    assert queue.items(NOW, search="tundra") == []


def test_detail_says_whether_each_channel_is_allowed_now(rules: Rulebook) -> None:
    queue = WorkQueue(rules, DEMO_STORE)
    late = datetime(2026, 11, 26, 3, 30, tzinfo=UTC)  # 21:30 in Chicago
    queue.load([(_lead("a", 1), [])], late)
    detail = queue.detail("a", late)
    decisions = dict(detail.contact)
    assert detail.zone.primary == "America/Chicago"
    assert not decisions[next(iter(decisions))].allowed  # calls: quiet hours
    call = next(d for c, d in detail.contact if c.value == "call")
    assert "quiet hours" in call.message
    assert call.next_allowed_at is not None
    assert call.next_allowed_at.astimezone(detail.zone.primary_zone).hour == 8


def test_with_a_reader_only_rows_stay_in_memory_and_the_workspace_reads_its_lead(
    rules: Rulebook,
) -> None:
    from app.services import workqueue

    leads = [_lead(f"lead-{n:02d}", n + 1) for n in range(workqueue.KEEP_RECENT + 8)]
    stored = {lead.id: (lead, [_call(lead, 0)] if n % 3 else []) for n, lead in enumerate(leads)}
    reads: list[str] = []

    def reader(lead_id: str) -> tuple[Lead, list[Activity]] | None:
        reads.append(lead_id)
        return stored.get(lead_id)

    in_memory = WorkQueue(rules, DEMO_STORE)
    in_memory.load(stored.values(), NOW)
    queue = WorkQueue(rules, DEMO_STORE)
    queue.read_from(reader)
    queue.load(stored.values(), NOW)
    assert queue.items(NOW) == in_memory.items(NOW)
    assert queue.items(NOW, search="lopez-lead-03") == in_memory.items(NOW, search="lopez-lead-03")
    assert len(queue._kept) == workqueue.KEEP_RECENT  # the last derived, not every lead
    oldest = leads[0].id
    assert oldest not in queue._kept
    assert queue.detail(oldest, NOW) == in_memory.detail(oldest, NOW)
    assert queue.history(oldest) == in_memory.history(oldest)
    assert reads == [oldest]  # read once, then kept while it is recent
    # a lead re-derived is shown as derived, not read again
    lead = leads[1]
    queue.upsert(lead, [_call(lead, 0), _call(lead, 2)], NOW)
    assert len(queue.history(lead.id)) == 2 and reads == [oldest]
    # gone from the store: the workspace cannot show it, and it leaves the queue (told)
    told: list[str] = []
    queue.on_changed_by_asking(told.append)
    del stored[leads[2].id]
    with pytest.raises(KeyError):
        queue.detail(leads[2].id, NOW)
    assert leads[2].id not in queue and told == [leads[2].id]
    assert leads[2].id not in [item.lead_id for item in queue.items(NOW)]
    assert not queue.remove(leads[2].id)


def test_a_reply_written_in_local_time_on_the_fall_back_night_is_due_five_real_minutes_later(
    rules: Rulebook,
) -> None:
    # 2026-11-01 01:58 CDT (the first 1:58; 06:58 UTC): five real minutes later is 07:03 UTC —
    # zoned arithmetic would say 02:03 CST, 08:03 UTC, an hour late.
    chicago = ZoneInfo("America/Chicago")
    at = datetime(2026, 11, 1, 1, 58, tzinfo=chicago, fold=0)
    assert at.astimezone(UTC) == datetime(2026, 11, 1, 6, 58, tzinfo=UTC)
    lead = replace(_lead("z", 0), received_at=datetime(2026, 10, 31, 20, 0, tzinfo=UTC))
    reply = Activity(
        "r-dst", "z", ActivityKind.TEXT, at, direction=Direction.INBOUND, body="Still there?"
    )
    queue = WorkQueue(rules, DEMO_STORE)
    queue.load([(lead, [reply])], at.astimezone(UTC))
    (item,) = queue.items(at.astimezone(UTC))
    assert item.kind is WorkKind.CUSTOMER_REPLY
    assert item.due_at == datetime(2026, 11, 1, 7, 3, tzinfo=UTC)
