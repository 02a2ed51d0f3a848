from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain.priority import WorkItem, WorkKind, countdown_text, rank, why_first

NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def _item(lead_id: str, kind: WorkKind, due_in_s: int, score: int = 50) -> WorkItem:
    return WorkItem(
        lead_id=lead_id,
        kind=kind,
        due_at=NOW + timedelta(seconds=due_in_s),
        score=score,
        tier="high",
        grade="B",
        name=f"Lead {lead_id}",
        vehicle="2026 Toyota Camry",
        source="Dealer website",
        action="Call #1",
    )


def test_buckets_order_waiting_customer_then_clock_then_promised_then_due_then_upcoming() -> None:
    items = [
        _item("upcoming", WorkKind.FOLLOW_UP, 3600),
        _item("followup", WorkKind.FOLLOW_UP, -600),
        _item("callback", WorkKind.CALLBACK, 120),
        _item("late-callback", WorkKind.CALLBACK, 3700),
        _item("new", WorkKind.NEW_LEAD, 200),
        _item("reply", WorkKind.CUSTOMER_REPLY, 100),
    ]
    assert [i.lead_id for i in rank(items, NOW)] == [
        "reply",
        "new",
        "callback",
        "followup",
        "upcoming",
        "late-callback",
    ]


def test_within_a_bucket_breached_first_then_earliest_then_higher_score() -> None:
    items = [
        _item("b", WorkKind.NEW_LEAD, 100, score=90),
        _item("a", WorkKind.NEW_LEAD, -30, score=10),
        _item("c", WorkKind.NEW_LEAD, 100, score=95),
    ]
    assert [i.lead_id for i in rank(items, NOW)] == ["a", "c", "b"]


def test_why_first_explains_in_words() -> None:
    text = why_first(_item("n", WorkKind.NEW_LEAD, 200), NOW)
    assert text.startswith("New lead: first call or text due in 3 min (5-minute rule).")
    assert "Score 50 (high, grade B)" in text
    overdue = why_first(_item("f", WorkKind.FOLLOW_UP, -7260), NOW)
    assert "2 h 01 min ago (overdue)" in overdue


def test_countdown_text() -> None:
    assert countdown_text(NOW + timedelta(seconds=299), NOW) == "04:59"
    assert countdown_text(NOW - timedelta(seconds=75), NOW) == "+01:15"
    assert countdown_text(NOW + timedelta(hours=3, seconds=5), NOW) == "3:00:05"
    assert countdown_text(NOW - timedelta(days=3), NOW) == "+3d"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(WorkKind)), st.integers(-(10**6), 10**6), st.integers(0, 100)
        ),
        max_size=30,
    )
)
def test_rank_is_a_deterministic_permutation(specs: list[tuple[WorkKind, int, int]]) -> None:
    items = [_item(str(n), kind, due, score) for n, (kind, due, score) in enumerate(specs)]
    ranked = rank(items, NOW)
    assert sorted(i.lead_id for i in ranked) == sorted(i.lead_id for i in items)
    assert rank(list(reversed(items)), NOW) == ranked
    keys = [i.sort_key(NOW) for i in ranked]
    assert keys == sorted(keys)
