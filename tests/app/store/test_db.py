"""Opening the local database: encryption at rest, keys, migrations, locks, crashes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import platformdirs
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.domain.codec import activity_to_dict
from app.store import (
    DatabaseTooNewError,
    StoreEnvironmentError,
    StoreError,
    WrongKeyError,
    database_key,
    default_store_path,
    open_local_store,
    session_only_store,
)
from app.store.db import head_revision, make_engine, migrate, schema_revision
from app.store.models import Base
from app.store.outbox import OutboxState
from tests.app.store.conftest import KEY
from tests.app.store.factories import lead_change, make_call, make_lead

REPO = Path(__file__).resolve().parents[3]


def _run_child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _wait_for_line(child: subprocess.Popen[str], expected: str) -> None:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != expected:
        child.kill()
        _, err = child.communicate(timeout=10)
        pytest.fail(f"child said {line!r}, expected {expected!r}; stderr: {err}")


def _disk_bytes(path: Path) -> bytes:
    """The database file and its WAL/SHM companions, as they lie on disk."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


# Encryption at rest


def test_file_is_unreadable_by_plain_sqlite_and_holds_no_personal_data(db_path: Path) -> None:
    with open_local_store(db_path, KEY) as store:
        store.repository.apply_changes(
            [
                lead_change(make_lead("lead-1")),
                lead_change(
                    make_lead(
                        "lead-2", first="Philomena", last="Vandersloot", phone="(773) 555-0142"
                    )
                ),
            ],
            "2",
        )
        # Look while the program is running too (WAL holds recent pages).
        during = _disk_bytes(db_path)
    after = _disk_bytes(db_path)
    for blob in (during, after):
        for secret in (
            b"Zebediah",
            b"Quackenbush",
            b"Vandersloot",
            b"3125550199",
            b"7735550142",
            b"555-0199",
            b"zebediah@example.org",
            b"SQLite format 3",
        ):
            assert secret not in blob
            assert secret.decode().encode("utf-16-le") not in blob
    plain = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            plain.execute("SELECT name FROM sqlite_master").fetchall()
    finally:
        plain.close()


def test_reopening_with_the_key_reads_everything_back(db_path: Path) -> None:
    with open_local_store(db_path, KEY) as store:
        store.repository.apply_changes([lead_change(make_lead())], "7")
    with open_local_store(db_path, KEY) as store:
        lead = store.repository.get_lead("lead-1")
        assert lead is not None
        assert lead.person.full_name == "Zebediah Quackenbush"
        assert store.repository.cursor() == "7"
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_a_passphrase_key_with_quotes_works_too(tmp_path: Path) -> None:
    # Not a 64-hex raw key: SQLCipher stretches it; the quotes must survive URL and PRAGMA.
    key = 'it\'s a "key" @/:%'
    path = tmp_path / "p.db"
    with open_local_store(path, key) as store:
        store.repository.set_cursor("3")
    with open_local_store(path, key) as store:
        assert store.repository.cursor() == "3"
    with pytest.raises(WrongKeyError):
        open_local_store(path, "it's a key")


def test_connections_use_wal_foreign_keys_and_a_busy_timeout(db_path: Path) -> None:
    open_local_store(db_path, KEY).close()
    engine = make_engine(db_path, KEY, busy_timeout_s=1.5)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 1500
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


# Keys


def test_wrong_key_is_a_clear_error_not_a_crash(
    db_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    open_local_store(db_path, KEY).close()
    capfd.readouterr()
    with pytest.raises(WrongKeyError) as caught:
        open_local_store(db_path, "a0" * 32)
    assert str(caught.value) == (
        f"cannot open the local database: wrong key or not a BDC database ({db_path})"
    )
    assert isinstance(caught.value, StoreError)
    assert capfd.readouterr().err == ""  # SQLCipher's own decryption log stays quiet


def test_a_plain_sqlite_file_is_not_a_bdc_database(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE notes (body TEXT)")
    plain.commit()
    plain.close()
    with pytest.raises(WrongKeyError, match="wrong key or not a BDC database"):
        open_local_store(path, KEY)


def test_an_encrypted_database_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = make_engine(path, KEY)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE invoices (total INTEGER)")
    engine.dispose()
    with pytest.raises(WrongKeyError, match=r"not a BDC database .*invoices"):
        open_local_store(path, KEY)


def test_empty_key_is_refused(db_path: Path) -> None:
    with pytest.raises(WrongKeyError, match="no key"):
        open_local_store(db_path, "")
    assert not db_path.exists()


class _Secrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.writes += 1
        self.values[name] = value


def test_database_key_is_made_once_per_user_and_kept() -> None:
    secrets = _Secrets()
    first = database_key(secrets, "ann")
    assert len(first) == 64 and int(first, 16) >= 0
    assert database_key(secrets, "ann") == first
    assert secrets.values == {"db-key:ann": first}
    assert secrets.writes == 1
    assert database_key(secrets, "bob") != first


# Where the database lives


def test_one_database_per_server_and_user_under_the_data_folder() -> None:
    path = default_store_path("https://crm.example.com", "ann")
    assert path.parent == Path(platformdirs.user_data_dir("bdc-workstation", appauthor=False))
    assert path.suffix == ".db"
    assert "ann" not in path.name and "example" not in path.name
    assert default_store_path("https://CRM.example.com/", " Ann ") == path
    assert default_store_path("https://crm.example.com", "bob") != path
    assert default_store_path("https://other.example.com", "ann") != path


def test_a_folder_that_cannot_be_created_is_an_environment_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StoreEnvironmentError, match="cannot create the local database"):
        open_local_store(blocker / "local.db", KEY)


# Migrations


def test_schema_of_the_newest_revision_matches_the_models(db_path: Path) -> None:
    open_local_store(db_path, KEY).close()
    engine = make_engine(db_path, KEY)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert diff == []
            assert schema_revision(connection) == head_revision() == "0004"
    finally:
        engine.dispose()


def test_an_older_database_is_upgraded_with_its_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    engine = make_engine(db_path, KEY)
    with engine.begin() as connection:
        migrate(connection, "0001")
        connection.exec_driver_sql(
            "INSERT INTO sync_state (id, cursor, server_offset_s) VALUES (1, '41', 0.0)"
        )
    with engine.connect() as connection:
        indexes = {i["name"] for i in inspect(connection).get_indexes("outbox")}
        assert "ix_outbox_state_due" not in indexes
    engine.dispose()

    with open_local_store(db_path, KEY) as store:
        assert store.repository.cursor() == "41"

    engine = make_engine(db_path, KEY)
    try:
        with engine.connect() as connection:
            assert schema_revision(connection) == "0004"
            assert "cached_documents" in inspect(connection).get_table_names()
            indexes = {i["name"] for i in inspect(connection).get_indexes("outbox")}
            assert "ix_outbox_state_due" in indexes
            lead_indexes = {i["name"] for i in inspect(connection).get_indexes("leads")}
            assert "ix_leads_assigned_agent_id" in lead_indexes
    finally:
        engine.dispose()


def test_activities_keyed_by_id_are_rekeyed_by_lead_with_their_order_and_state(
    db_path: Path,
) -> None:
    """0004 keys activities by (lead_id, id); rows keep their rowids, which order ties."""
    db_path.parent.mkdir(parents=True)
    engine = make_engine(db_path, KEY)
    same_time = [  # stored z before a: a read orders ties by storage order, not by id
        make_call("lead-1", minutes=1, activity_id="zzz"),
        make_call("lead-1", minutes=1, activity_id="aaa"),
    ]
    other = make_call("lead-2", minutes=3, activity_id="mmm")
    with engine.begin() as connection:
        migrate(connection, "0003")
        for activity, pending in [(same_time[0], 0), (same_time[1], 1), (other, 0)]:
            connection.exec_driver_sql(
                "INSERT INTO activities (id, lead_id, at, data, pending) VALUES (?, ?, ?, ?, ?)",
                (
                    activity.id,
                    activity.lead_id,
                    activity.at.replace(tzinfo=None).isoformat(sep=" "),
                    json.dumps(activity_to_dict(activity)),
                    pending,
                ),
            )
    engine.dispose()

    with open_local_store(db_path, KEY) as store:
        assert store.repository.history("lead-1") == same_time
        assert store.repository.history("lead-2") == [other]

    engine = make_engine(db_path, KEY)
    try:
        with engine.connect() as connection:
            assert schema_revision(connection) == "0004"
            assert inspect(connection).get_pk_constraint("activities")["constrained_columns"] == [
                "lead_id",
                "id",
            ]
            pending = connection.exec_driver_sql(
                "SELECT id FROM activities WHERE pending ORDER BY rowid"
            ).all()
            assert pending == [("aaa",)]
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT id FROM activities WHERE lead_id = 'lead-1' "
                    "AND id = 'aaa'"
                )
            )
            assert "USING" in plan and "INDEX" in plan, plan
    finally:
        engine.dispose()


def test_a_database_from_a_newer_program_is_refused_and_left_alone(db_path: Path) -> None:
    open_local_store(db_path, KEY).close()
    engine = make_engine(db_path, KEY)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0107_future'")
    engine.dispose()

    with pytest.raises(DatabaseTooNewError) as caught:
        open_local_store(db_path, KEY)
    assert str(caught.value).startswith(
        "This database was written by a newer version of BDC Workstation (schema 0107_future)"
    )

    engine = make_engine(db_path, KEY)
    try:
        with engine.connect() as connection:
            assert schema_revision(connection) == "0107_future"
    finally:
        engine.dispose()


def test_a_database_at_the_newest_schema_opens_without_loading_alembic(db_path: Path) -> None:
    from app.store.db import _head_from_files

    assert _head_from_files() == head_revision()
    open_local_store(db_path, KEY).close()
    child = _run_child(
        """
        import sys
        from pathlib import Path
        from app.store import open_local_store
        open_local_store(Path(sys.argv[1]), sys.argv[2]).close()
        print("alembic" in sys.modules, flush=True)
        """,
        str(db_path),
        KEY,
    )
    out, err = child.communicate(timeout=60)
    assert (child.returncode, out.strip()) == (0, "False"), err


# Other processes


LOCKER = """
    import sys, time
    import sqlcipher3
    connection = sqlcipher3.connect(sys.argv[1], isolation_level=None)
    connection.execute(f"PRAGMA key = \\"x'{sys.argv[2]}'\\"")
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("UPDATE sync_state SET cursor = 'held'")
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_database_locked_by_another_process_is_an_environment_error(db_path: Path) -> None:
    with open_local_store(db_path, KEY) as store:
        store.repository.set_cursor("1")
    child = _run_child(LOCKER, str(db_path), KEY)
    try:
        _wait_for_line(child, "locked")
        with pytest.raises(StoreEnvironmentError) as caught:
            open_local_store(db_path, KEY, busy_timeout_s=0.2)
        assert "locked by another program" in str(caught.value)
        assert "already running" in str(caught.value)
    finally:
        child.kill()
        child.communicate(timeout=10)
    # Once the other process is gone the database opens and its write never landed.
    with open_local_store(db_path, KEY) as store:
        assert store.repository.cursor() == "1"


RECORDER = """
    import sys, time
    from pathlib import Path
    from app.store import open_local_store
    from tests.app.store.factories import lead_change, make_call, make_lead
    store = open_local_store(Path(sys.argv[1]), sys.argv[2])
    store.repository.apply_changes([lead_change(make_lead())], "1")
    first = store.outbox.record_activity(make_call(activity_id=sys.argv[3]))
    store.outbox.mark_sending(first.id)
    store.outbox.record_activity(make_call(activity_id=sys.argv[4], minutes=2))
    print("recorded", flush=True)
    time.sleep(60)
"""


def test_a_killed_process_loses_nothing_and_doubles_nothing(db_path: Path) -> None:
    first_id = "00000000-0000-4000-8000-000000000001"
    second_id = "00000000-0000-4000-8000-000000000002"
    child = _run_child(RECORDER, str(db_path), KEY, first_id, second_id)
    try:
        _wait_for_line(child, "recorded")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL

    with open_local_store(db_path, KEY) as store:
        history = store.repository.history("lead-1")
        assert [a.id for a in history] == [first_id, second_id]
        assert history[0] == make_call(activity_id=first_id)
        items = store.outbox.open_items()
        assert [i.idempotency_key for i in items] == [first_id, second_id]
        # The one caught mid-send is pending again, with its attempt counted.
        assert [(i.state, i.attempts) for i in items] == [
            (OutboxState.PENDING, 1),
            (OutboxState.PENDING, 0),
        ]
        assert items[0].body == activity_to_dict(make_call(activity_id=first_id))
        assert store.outbox.pending_count() == 2


# Session-only mode


def test_session_only_store_works_in_memory_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = session_only_store()
    try:
        assert store.session_only and store.path is None
        store.repository.apply_changes([lead_change(make_lead())], "5")
        store.outbox.record_activity(make_call())
        assert store.repository.cursor() == "5"
        assert store.outbox.pending_count() == 1
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []
    fresh = session_only_store()
    try:
        assert fresh.repository.get_lead("lead-1") is None
        assert fresh.outbox.pending_count() == 0
    finally:
        fresh.close()
