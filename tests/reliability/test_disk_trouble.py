"""The PC's disk in the way: the local database locked by another process, the disk full, the file
damaged. Each gives the agent a clear message about the environment (StoreEnvironmentError, never
a crash or a "bug" error), the program does not fail at every start, and the agent's data comes
back (from the outbox once the disk is usable again, or from the server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from app.services.workstation import Workstation
from app.store import StoreEnvironmentError
from app.store.db import open_local_store
from tests.app.sync.live import Floor, LiveServer, wait_for
from tests.reliability.support import REPO, figures

LOCKER = """
import sys, sqlcipher3
connection = sqlcipher3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA key = \\"x'" + sys.argv[2] + "'\\"")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server.db")
    server.start()
    try:
        yield server
    finally:
        server.close()


def _key(floor: Floor, username: str) -> str:
    return next(v for (_, name), v in floor.keyrings[username].entries.items() if "db-key" in name)


async def _lead(floor: Floor, workstation: Workstation, name: str) -> str:
    lead_id = await asyncio.to_thread(floor.live.post_lead, name)
    await wait_for(lambda: workstation.store.repository.get_lead(lead_id) is not None, 10)
    return lead_id


@contextlib.contextmanager
def _locked_by_another_process(path: Path, key: str) -> Iterator[None]:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), key],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        yield
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(10)
        if locker.stdout:
            locker.stdout.close()


def test_a_database_locked_by_another_process_says_so_and_loses_nothing(
    live: LiveServer, tmp_path: Path
) -> None:
    floor = Floor(live, tmp_path)

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        try:
            lead_id = await _lead(floor, workstation, "Locked")
            path = workstation.store.path
            assert path is not None
            key = _key(floor, "ana")
            saved = [(await workstation.actions.add_note(lead_id, "before")).activity_ids[0]]
            with _locked_by_another_process(path, key):
                # A second program opening the file: refused with a message, the file untouched.
                with pytest.raises(StoreEnvironmentError, match="locked by another program"):
                    open_local_store(path, key, busy_timeout_s=0.2)
                assert path.exists()
                # The running program: the action is refused with the same message, not lost
                # silently, and the program keeps running.
                with pytest.raises(StoreEnvironmentError, match="locked by another program"):
                    await workstation.actions.add_note(lead_id, "while locked")
            saved += (await workstation.actions.add_note(lead_id, "after")).activity_ids
            await wait_for(lambda: workstation.status.pending == 0, 15)
            assert sorted(live.activity_ids(lead_id)) == sorted(saved)
            figures("disk: locked", refused_with_message=2, lost=0)
        finally:
            await floor.close_all()

    asyncio.run(main())


@contextlib.contextmanager
def _small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 16 MB tmpfs when this process may mount one (root); None otherwise.

    The filler file is created here, before the store opens: the store's WAL may already hold
    megabytes when the test fills the disk (CI saw a 3 MB disk full before the filler existed),
    and creating a file on a full tmpfs fails.
    """
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or os.environ.get("BDC_TEST_NO_MOUNT"):
        yield None
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        yield None
        return
    try:
        (mount / "filler").touch()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"  # created by _small_disk while there was room
    with filler.open("ab") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
    return filler


def test_a_full_disk_says_so_keeps_what_was_saved_and_recovers_when_space_is_freed(
    live: LiveServer, tmp_path: Path
) -> None:
    with _small_disk(tmp_path) as disk:
        floor = Floor(live, disk or tmp_path)

        async def main() -> None:
            workstation, _ = await floor.open("ana")
            try:
                lead_id = await _lead(floor, workstation, "Full")
                live.stop()  # offline: everything stays in the outbox
                saved: list[str] = []
                for n in range(20):
                    saved += (
                        await workstation.actions.add_note(lead_id, f"early {n}")
                    ).activity_ids
                engine = workstation.store._engine
                pages: list[int] = []
                if disk is None:
                    # No filesystem of our own: SQLite's page limit gives the same "full" error.
                    def limit(dbapi_connection: object, _record: object) -> None:
                        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
                        count = cursor.execute("PRAGMA page_count").fetchone()[0]
                        pages.append(count)
                        cursor.execute(f"PRAGMA max_page_count = {count + 8}")
                        cursor.close()

                    event.listen(engine, "connect", limit)
                    engine.dispose()
                    filler = None
                else:
                    filler = _fill(disk)
                message = ""
                for n in range(3000):
                    try:
                        result = await workstation.actions.add_note(lead_id, f"note {n} " * 40)
                    except StoreEnvironmentError as error:
                        message = str(error)
                        break
                    saved += result.activity_ids
                assert "disk holding the local database is full" in message, message
                # Space comes back: the program carries on, and every saved action is sent.
                if filler is not None:
                    filler.unlink()
                else:
                    event.remove(engine, "connect", limit)
                    engine.dispose()
                saved += (await workstation.actions.add_note(lead_id, "after")).activity_ids
                live.start()
                await wait_for(lambda: workstation.status.pending == 0, 30)
                on_server = live.activity_ids(lead_id)
                assert sorted(on_server) == sorted(saved)
                figures(
                    "disk: full",
                    filesystem="tmpfs 16 MB" if disk else "max_page_count",
                    saved_before_full=len(saved) - 1,
                    refused_with_message=1,
                    delivered=len(on_server),
                    lost=len(set(saved) - set(on_server)),
                )
            finally:
                await floor.close_all()

        asyncio.run(main())


def test_a_damaged_database_is_set_aside_kept_and_refilled_from_the_server(
    live: LiveServer, tmp_path: Path
) -> None:
    floor = Floor(live, tmp_path)

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        lead_id = await _lead(floor, workstation, "Damaged")
        ids: list[str] = []
        for n in range(20):
            ids += (await workstation.actions.add_note(lead_id, f"kept {n}")).activity_ids
        await wait_for(lambda: workstation.status.pending == 0, 15)
        path = workstation.store.path
        assert path is not None
        await floor.close_all()

        # Garbage over the header page and a few others (a bad sector, a crashed disk driver).
        size = path.stat().st_size
        rng = random.Random(5)
        with path.open("r+b") as damaged:
            for offset in [0, *rng.sample(range(4096, max(size, 8192), 4096), 3)]:
                damaged.seek(offset)
                damaged.write(rng.randbytes(4096))

        again, _ = await floor.open("ana")
        try:
            kept = again.store.set_aside
            assert kept is not None and kept.exists()
            assert "damaged" in again.storage_message and str(kept) in again.storage_message
            await wait_for(lambda: again.store.repository.get_lead(lead_id) is not None, 15)
            local = {a.id for a in again.store.repository.history(lead_id)}
            assert set(ids) <= local
        finally:
            await floor.close_all()

        # The next start is a normal one: no crash loop, nothing set aside again.
        third, _ = await floor.open("ana")
        try:
            assert third.store.set_aside is None
            assert third.store.repository.get_lead(lead_id) is not None
        finally:
            await floor.close_all()
        figures("disk: damaged", set_aside=1, refilled_from_server=len(ids), lost=0)

    asyncio.run(main())
