"""The incremental ranking always equals a full sort (`app.domain.priority.rank`)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.priority import WorkItem, WorkKind, rank
from app.services.ranking import Ranking

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
LEADS = [f"L{n:02d}" for n in range(12)]


def _item(lead_id: str, kind: WorkKind, due_in_min: int, score: int, action: str) -> WorkItem:
    return WorkItem(
        lead_id=lead_id,
        kind=kind,
        due_at=NOW + timedelta(minutes=due_in_min),
        score=score,
        tier="high",
        grade="B",
        name=f"Customer {lead_id}",
        vehicle="2026 Toyota Camry",
        source="Dealer website",
        action=action,
    )


items = st.builds(
    _item,
    st.sampled_from(LEADS),
    st.sampled_from(list(WorkKind)),
    st.integers(-30, 90),  # around the 5-minute lead time and the due time
    st.integers(0, 3),  # few scores: ties on deadline and score break on the lead id
    st.sampled_from(["Call #1", "Text #2"]),
)
operations = st.one_of(
    st.tuples(st.just("put"), items),
    st.tuples(st.just("drop"), st.sampled_from(LEADS)),
    st.tuples(st.just("advance"), st.integers(0, 20)),  # minutes forward
    st.tuples(st.just("back"), st.integers(1, 20)),  # a clock set back
)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=12), st.lists(operations, max_size=40))
def test_random_changes_leave_exactly_the_order_of_a_full_sort(
    first: list[WorkItem], ops: list[tuple[str, object]]
) -> None:
    current = {item.lead_id: item for item in first}
    ranking = Ranking()
    now = NOW
    ranking.rebuild(current.values(), now)
    for op, arg in ops:
        if op == "put":
            assert isinstance(arg, WorkItem)
            current[arg.lead_id] = arg
            ranking.put(arg.lead_id, arg, now)
        elif op == "drop":
            assert isinstance(arg, str)
            current.pop(arg, None)
            ranking.drop(arg)
        elif op == "advance":
            assert isinstance(arg, int)
            now += timedelta(minutes=arg)
        else:
            assert isinstance(arg, int)
            now -= timedelta(minutes=arg)
        ranked, keys = ranking.ranked(now)
        assert ranked == rank(current.values(), now)
        assert keys == sorted(keys)
        assert [key[3] for key in keys] == [item.lead_id for item in ranked]
        assert len(ranking) == len(current)


def test_unchanged_items_keep_their_key_objects_and_a_changed_one_gets_a_new_key() -> None:
    ranking = Ranking()
    a = _item("a", WorkKind.NEW_LEAD, 3, 10, "Call #1")
    b = _item("b", WorkKind.FOLLOW_UP, 30, 10, "Call #2")
    ranking.rebuild([a, b], NOW)
    _, before = ranking.ranked(NOW)
    ranking.put("a", _item("a", WorkKind.NEW_LEAD, 2, 10, "Call #1"), NOW)
    _, after = ranking.ranked(NOW)
    assert after[1] is before[1] and after[0] is not before[0]
    # b's follow-up falls due at +30 min: its bucket changes, so it gets a new key
    _, later = ranking.ranked(NOW + timedelta(minutes=31))
    assert later[0][3] == "a" and later[1][3] == "b" and later[1] is not after[1]
