"""Readers can never skip past a change, even while many transactions write at once.

The hazard: with a plain sequence, a transaction that took seq 10 may commit after one that took
seq 11; a reader that saw 11 moves its cursor past 10 and never sees it. server.changes.record
makes change-writing transactions commit in seq order; these tests prove it on the database in
use (SQLite and PostgreSQL), and show the hazard is real without it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.auth import Principal, Role
from server.changes import batched, record
from server.db import ChangeRow, is_postgres, make_engine, make_sessionmaker, utcnow
from server.hub import read_changes
from server.migrate import upgrade

MIA = Principal("user-mia", Role.MANAGER, "lakeside", "mia")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def reader(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions for the reader. On SQLite a plain engine: the app engine's BEGIN IMMEDIATE would
    make the reader queue behind the writers instead of reading beside them (WAL)."""
    if is_postgres(engine):
        yield make_sessionmaker(engine)
        return
    plain = create_engine(engine.url, connect_args={"timeout": 30})
    yield make_sessionmaker(plain)
    plain.dispose()


def poll(sessions: sessionmaker[Session], cursor: int) -> tuple[list[int], int]:
    """Everything after `cursor`, as a client would pull it page by page."""
    seen: list[int] = []
    while True:
        with sessions() as session:
            page = read_changes(session, MIA, cursor, 50)
        seen += [c["seq"] for c in page.changes]
        cursor = page.next_cursor
        if not page.has_more:
            return seen, cursor


def test_a_polling_reader_gets_every_change_exactly_once(
    engine: Engine, reader: sessionmaker[Session]
) -> None:
    sessions = make_sessionmaker(engine)
    writers, transactions_each = 8, 12
    rng = random.Random(20260310)
    plans = [
        [(rng.randint(1, 3), rng.uniform(0, 0.02)) for _ in range(transactions_each)]
        for _ in range(writers)
    ]
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(plan: list[tuple[int, float]]) -> None:
        try:
            start.wait()
            for changes, pause in plan:
                with sessions() as session, session.begin():
                    for n in range(changes):
                        record(
                            session,
                            store_id="lakeside" if n % 3 else "riverside",
                            entity="lead",
                            entity_id=f"L{n}",
                            data={},
                        )
                    time.sleep(pause)  # commit late: others' transactions overtake this one
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    start.wait()
    received: list[int] = []
    cursor = 0
    polls = 0
    while any(t.is_alive() for t in threads):
        got, cursor = poll(reader, cursor)
        received += got
        polls += 1
    for thread in threads:
        thread.join()
    got, cursor = poll(reader, cursor)
    received += got
    assert not errors, errors
    with sessions() as session:
        written = [
            seq
            for (seq,) in session.query(ChangeRow.seq)
            .filter(ChangeRow.store_id == "lakeside")
            .order_by(ChangeRow.seq)
        ]
    expected = sum(sum(1 for n in range(c) if n % 3) for plan in plans for c, _ in plan)
    assert len(written) == expected
    assert received == written  # every one, once, in order
    assert polls > 3  # the reader really read while the writers wrote


def test_a_writer_that_started_later_waits_for_the_earlier_one(
    engine: Engine, reader: sessionmaker[Session]
) -> None:
    sessions = make_sessionmaker(engine)
    first_recorded = threading.Event()
    release_first = threading.Event()
    second_done = threading.Event()
    order: dict[str, int] = {}

    def first() -> None:
        with sessions() as session, session.begin():
            order["first"] = record(
                session, store_id="lakeside", entity="lead", entity_id="A", data={}
            ).seq
            first_recorded.set()
            release_first.wait(20)

    def second() -> None:
        first_recorded.wait(20)
        with sessions() as session, session.begin():
            order["second"] = record(
                session, store_id="lakeside", entity="lead", entity_id="B", data={}
            ).seq
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_recorded.wait(20)
    time.sleep(0.3)
    # The second writer cannot get ahead of the uncommitted first: nothing is readable yet.
    assert not second_done.is_set()
    assert poll(reader, 0) == ([], 0)
    release_first.set()
    for thread in threads:
        thread.join()
    assert order["first"] < order["second"]
    assert poll(reader, 0) == ([order["first"], order["second"]], order["second"])


def test_without_the_lock_a_reader_would_skip(
    engine: Engine, reader: sessionmaker[Session]
) -> None:
    """The control experiment: plain inserts on PostgreSQL commit out of seq order."""
    if not is_postgres(engine):
        pytest.skip("SQLite serializes writers; the hazard exists only on PostgreSQL")

    def row(entity_id: str) -> dict[str, object]:
        return {
            "store_id": "lakeside",
            "entity": "lead",
            "entity_id": entity_id,
            "data": {},
            "at": utcnow(),
        }

    with engine.connect() as slow, engine.connect() as fast:
        slow.begin()
        slow_seq = slow.execute(insert(ChangeRow).returning(ChangeRow.seq), row("slow")).scalar()
        fast.begin()
        fast_seq = fast.execute(insert(ChangeRow).returning(ChangeRow.seq), row("fast")).scalar()
        fast.commit()
        seen, cursor = poll(reader, 0)
        assert seen == [fast_seq] and cursor == fast_seq
        slow.commit()
    assert slow_seq is not None and slow_seq < cursor
    assert poll(reader, cursor)[0] == []  # skipped for good: why record() takes the lock


def test_batched_and_plain_writers_together_skip_nothing(
    engine: Engine, reader: sessionmaker[Session]
) -> None:
    """Intake records its changes inside `batched` (written at the commit, after the lock);
    other routes record theirs one by one. Mixed, concurrently: every change once, in order."""
    sessions = make_sessionmaker(engine)
    writers, transactions_each = 6, 10
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait()
            for _ in range(transactions_each):
                with sessions() as session, session.begin():
                    scope = batched(session) if index % 2 else contextlib.nullcontext()
                    with scope:
                        for n in range(rng.randint(1, 4)):
                            record(
                                session,
                                store_id="lakeside",
                                entity="lead",
                                entity_id=f"W{index}-{n}",
                                data={},
                            )
                    time.sleep(rng.uniform(0, 0.01))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    received: list[int] = []
    cursor = 0
    while any(t.is_alive() for t in threads):
        got, cursor = poll(reader, cursor)
        received += got
    for thread in threads:
        thread.join()
    received += poll(reader, cursor)[0]
    assert not errors, errors
    with sessions() as session:
        written = [seq for (seq,) in session.query(ChangeRow.seq).order_by(ChangeRow.seq)]
    assert received == written


def test_batched_changes_are_written_at_commit_in_record_order(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        with batched(session):
            kept = [
                record(session, store_id="lakeside", entity="lead", entity_id=name, data={})
                for name in ("a", "b")
            ]
            assert all(row.seq is None for row in kept)  # not drawn yet
            # PostgreSQL: kept for the commit (after the lock); SQLite: out with the next flush
            # (this query's autoflush).
            assert session.query(ChangeRow).count() == (0 if is_postgres(engine) else 2)
        # A plain record() after them writes them first: record() order is the seq order.
        last = record(session, store_id="lakeside", entity="lead", entity_id="c", data={})
        with batched(session):
            record(session, store_id="lakeside", entity="lead", entity_id="d", data={})
    with sessions() as session:
        rows = session.query(ChangeRow.entity_id).order_by(ChangeRow.seq).all()
    assert [r for (r,) in rows] == ["a", "b", "c", "d"]
    assert kept[0].seq < kept[1].seq < last.seq
    # Kept rows of a transaction that rolls back are dropped with it.

    def rolled_back() -> None:
        with sessions() as session, session.begin():
            with batched(session):
                record(session, store_id="lakeside", entity="lead", entity_id="gone", data={})
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()
    with sessions() as session, session.begin():
        record(session, store_id="lakeside", entity="lead", entity_id="e", data={})
    with sessions() as session:
        rows = session.query(ChangeRow.entity_id).order_by(ChangeRow.seq).all()
    assert [r for (r,) in rows] == ["a", "b", "c", "d", "e"]
