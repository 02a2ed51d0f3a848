"""SQLite: the threads of one server process queue for the write lock on the engine's own lock
(server.db.make_engine), which every way a transaction ends gives back; read-only sessions take
no part in it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from server.db import (
    ChangeRow,
    make_engine,
    make_sessionmaker,
    read_only_engine,
    transaction,
    utcnow,
)
from server.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'leads.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _change(entity_id: str) -> ChangeRow:
    return ChangeRow(store_id="lakeside", entity="lead", entity_id=entity_id, data={}, at=utcnow())


def _in_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_second_writer_waits_for_the_first_and_then_runs(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    first_in = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with transaction(sessions) as session:
            session.add(_change("first"))
            session.flush()
            first_in.set()
            release.wait(20)
            order.append("first committed")

    def second() -> None:
        first_in.wait(20)
        with transaction(sessions) as session:
            session.execute(text("select 1"))  # the BEGIN (a session begins lazily)
            order.append("second began")
            session.add(_change("second"))

    threads = [_in_thread(first), _in_thread(second)]
    assert first_in.wait(20)
    threads[1].join(0.3)
    assert order == []  # still waiting for the writer before it
    release.set()
    for thread in threads:
        thread.join(20)
    assert order == ["first committed", "second began"]


@pytest.mark.parametrize("ending", ["exception", "rollback", "close"])
def test_every_way_a_transaction_ends_gives_the_lock_back(engine: Engine, ending: str) -> None:
    sessions = make_sessionmaker(engine)
    if ending == "exception":

        def failing() -> None:
            with transaction(sessions) as session:
                session.add(_change("gone"))
                session.flush()
                raise RuntimeError("the route failed")

        with pytest.raises(RuntimeError):
            failing()
    elif ending == "rollback":
        session = sessions()
        session.execute(select(ChangeRow.seq))
        session.rollback()
        session.close()
    else:
        connection = engine.connect()
        connection.execute(text("select 1"))  # BEGIN IMMEDIATE: the lock is this connection's
        connection.close()
    done = threading.Event()

    def write() -> None:
        with transaction(sessions) as session:
            session.add(_change("next"))
        done.set()

    _in_thread(write).join(10)
    assert done.is_set()  # not stuck behind a lock nobody holds any more


def test_one_connection_may_begin_again_without_waiting_for_itself(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("select 1"))
        connection.commit()
        connection.execute(text("select 1"))  # a second BEGIN on the same connection
        connection.commit()


def test_a_read_only_session_reads_while_a_writer_holds_the_lock(engine: Engine) -> None:
    writer_in = threading.Event()
    release = threading.Event()

    def write() -> None:
        with transaction(make_sessionmaker(engine)) as session:
            session.add(_change("uncommitted"))
            session.flush()
            writer_in.set()
            release.wait(20)

    thread = _in_thread(write)
    try:
        assert writer_in.wait(20)
        readers = make_sessionmaker(read_only_engine(engine))
        got: list[int] = []
        reader = _in_thread(lambda: got.extend(_seqs(readers)))
        reader.join(5)
        assert not reader.is_alive() and got == []  # a snapshot without the writer's row
    finally:
        release.set()
        thread.join(20)
    assert len(_seqs(make_sessionmaker(read_only_engine(engine)))) == 1


def _seqs(sessions: object) -> list[int]:
    with sessions() as session:  # type: ignore[operator]
        return list(session.scalars(select(ChangeRow.seq)).all())
