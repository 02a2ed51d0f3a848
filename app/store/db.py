"""Opening the workstation's local database: SQLCipher-encrypted file, WAL, migrations at open.

One database per server and user (default_store_path). The key is a random 256-bit value made on
first run and kept in the OS keyring (database_key); without a secure keyring the program runs on
session_only_store(), an in-memory database that leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import platformdirs
from sqlalchemy import URL, create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool, StaticPool

from app.store.errors import (
    WRONG_KEY_MESSAGE,
    DatabaseTooNewError,
    StoreEnvironmentError,
    StoreError,
    WrongKeyError,
    storage_errors,
)
from app.store.outbox import Outbox
from app.store.repository import Repository

MIGRATIONS = Path(__file__).parent / "migrations"
APP_DIR_NAME = "bdc-workstation"
DEFAULT_BUSY_TIMEOUT_S = 5.0
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
_BEGIN_OPTION = "bdc_begin"


class KeyHolder(Protocol):
    """What database_key needs from a secret store (app.sync.credentials.SecretStore fits)."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...


def database_key(secrets_store: KeyHolder, user: str) -> str:
    """The user's database key from the secret store, created (64 hex digits) on first use."""
    name = f"db-key:{user}"
    key = secrets_store.get(name)
    if key:
        return key
    key = secrets.token_hex(32)
    secrets_store.set(name, key)
    return key


def default_store_path(server_url: str, username: str, data_dir: Path | None = None) -> Path:
    """Where this server's and user's database lives, under the platform's data folder.

    The name is a hash: it tells nothing about the server or user to someone browsing the disk,
    and one user on two servers (or two users on one PC) never share a file.
    """
    identity = f"{server_url.strip().rstrip('/').lower()}\n{username.strip().casefold()}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    folder = data_dir or Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False))
    return folder / f"local-{digest}.db"


# Migrations. Alembic (~0.2 s of imports) is loaded only when the schema is not at the head:
# the usual start of the program reads the stored revision with one query.

_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def _head_from_files() -> str | None:
    """The head revision read from the migration files' text (None: not one clear head)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, name in _REVISION.findall(path.read_text(encoding="utf-8")):
            (downs if down else revisions).add(name)
    heads = revisions - downs
    return next(iter(heads)) if len(heads) == 1 else None


def _at_head(connection: Connection) -> bool:
    """The stored schema is this program's newest (nothing to migrate), by one query."""
    head = _head_from_files()
    if head is None:
        return False
    try:
        tables = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchall()
        if not tables:
            return False
        stored = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    except Exception:  # e.g. a wrong key: the full check below says what is wrong
        return False
    return [row[0] for row in stored] == [head]


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "app/store/migrations has revisions"
    return head


def schema_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def migrate(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to `revision`, refusing files this program cannot understand.

    Runs in the caller's transaction: a failed upgrade leaves the file as it was.
    """
    if revision == "head" and connection.dialect.name == "sqlite" and _at_head(connection):
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    current = schema_revision(connection)
    script = ScriptDirectory(str(MIGRATIONS))
    if current is None:
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if tables:
            raise WrongKeyError(
                "cannot open the local database: wrong key or not a BDC database "
                f"(it holds other tables: {', '.join(sorted(tables)[:5])})"
            )
    elif current not in {rev.revision for rev in script.walk_revisions()}:
        raise DatabaseTooNewError(
            "This database was written by a newer version of BDC Workstation "
            f"(schema {current}); this version understands up to {script.get_current_head()}. "
            "Install the newer version, or sign out to start a fresh local copy."
        )
    command.upgrade(_alembic_config(connection), revision)


# Engines


def _on_connect_file(busy_timeout_s: float) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transactions to SQLAlchemy's begin event below (the driver's own implicit BEGIN
        # does not cover DDL and cannot take the write lock up front).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # A wrong key is reported to the user as a StoreError; SQLCipher must not also print
            # its decryption errors to stderr.
            cursor.execute("PRAGMA cipher_log_level = NONE")
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed action survives a power cut, not only a killed process.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    return on_connect


def _on_connect_memory(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(connection: Connection) -> None:
    # Writers take the write lock at BEGIN, so two writers never deadlock upgrading read locks.
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(path: Path, key: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """An engine over the encrypted file at `path` (nothing is opened until first use)."""
    # A 64-hex-digit key is a raw 256-bit key: SQLCipher skips its passphrase stretching (which
    # adds nothing to a random key and costs ~0.1 s per connection). Any other text is a
    # passphrase. URL.create escapes the key; the dialect quotes it for the PRAGMA.
    password = f"x'{key}'" if _HEX_KEY.match(key) else key
    url = URL.create("sqlite+pysqlcipher", password=password, database=str(path))
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=4,
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect_file(busy_timeout_s))
    event.listen(engine, "begin", _on_begin)
    return engine


def _memory_engine() -> Engine:
    # One shared connection (StaticPool) is the whole database; LocalStore serializes its use.
    engine = create_engine(
        "sqlite+pysqlite://",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect_memory)
    event.listen(engine, "begin", _on_begin)
    return engine


class LocalStore:
    """The open local database: `repository` reads and syncs data, `outbox` records actions."""

    def __init__(self, engine: Engine, *, path: Path | None) -> None:
        self.path = path
        self.session_only = path is None
        # A damaged or unreadable file found at open and moved here (kept for IT), or None.
        self.set_aside: Path | None = None
        self._engine = engine
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(
            bind=engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}), expire_on_commit=False
        )
        # The in-memory database is one connection: threads must take turns on it.
        self._lock: threading.RLock | None = threading.RLock() if path is None else None
        self.repository = Repository(self)
        self.outbox = Outbox(self)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    @contextmanager
    def write(self, doing: str) -> Iterator[Session]:
        """One write transaction: everything in the block is committed together or not at all."""
        with self._turn(), storage_errors(doing), self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self, doing: str) -> Iterator[Session]:
        with self._turn(), storage_errors(doing), self._reader.begin() as session:
            yield session

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _create_private_file(path: Path) -> None:
    """Create the file readable by this user only before SQLite creates it world-readable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as error:
        raise StoreEnvironmentError(
            f"cannot create the local database at {path}: {error.strerror or error}"
        ) from error


def _prepare(engine: Engine, doing: str) -> None:
    with (
        storage_errors(doing),
        engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}).begin() as connection,
    ):
        migrate(connection)


def open_local_store(
    path: Path, key: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> LocalStore:
    """Open (creating or upgrading) the encrypted database at `path`.

    Raises WrongKeyError, DatabaseTooNewError or StoreEnvironmentError (locked, disk full, no
    permission) with a message for the user.
    """
    if not key:
        raise WrongKeyError("cannot open the local database: no key was given")
    _create_private_file(path)
    engine = make_engine(path, key, busy_timeout_s=busy_timeout_s)
    try:
        _prepare(engine, f"opening the local database {path}")
        store = LocalStore(engine, path=path)
        store.outbox.recover()
    except WrongKeyError as error:
        engine.dispose()
        if "other tables" in str(error):
            raise
        raise WrongKeyError(WRONG_KEY_MESSAGE.format(path=path)) from error
    except BaseException:
        engine.dispose()
        raise
    return store


def set_aside(path: Path) -> Path:
    """Move a damaged database (and its -wal/-shm files) out of the way, keeping it: returns
    where it went. The next open starts a fresh copy, filled from the server."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.replace(target.with_name(target.name + suffix))
        path.replace(target)
    except OSError as error:
        raise StoreEnvironmentError(
            f"the local database {path} is damaged and cannot be moved aside: "
            f"{error.strerror or error}"
        ) from error
    return target


def _damaged(error: StoreError) -> bool:
    """Unreadable with this user's own key, or reported corrupt: not fixable by retrying."""
    if isinstance(error, WrongKeyError):
        return True
    return isinstance(error, StoreEnvironmentError) and "damaged" in str(error)


def session_only_store() -> LocalStore:
    """An in-memory database for a PC with no secure keyring: nothing is written to disk."""
    engine = _memory_engine()
    try:
        _prepare(engine, "creating the session-only database")
    except StoreError:
        engine.dispose()
        raise
    return LocalStore(engine, path=None)


def open_user_store(
    server_url: str,
    username: str,
    secrets_store: KeyHolder | None,
    *,
    data_dir: Path | None = None,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    set_aside_damaged: bool = False,
) -> LocalStore:
    """The signed-in user's local database for this server.

    With a secure keyring (`secrets_store`), the encrypted file at default_store_path, its key
    made on first use and kept in the keyring. Without one (`None`), a session-only in-memory
    database: the caller must say so to the user (LocalStore.session_only is True).

    `set_aside_damaged`: a file that cannot be read with the user's key or is corrupt is moved
    aside (kept, `LocalStore.set_aside`) and a fresh one opened, which the sync engine fills from
    the server — instead of failing at every start. Actions not yet sent stay in the kept file.
    """
    if secrets_store is None:
        return session_only_store()
    key = database_key(secrets_store, username)
    path = default_store_path(server_url, username, data_dir)
    try:
        return open_local_store(path, key, busy_timeout_s=busy_timeout_s)
    except StoreError as error:
        if not set_aside_damaged or not _damaged(error):
            raise
        kept = set_aside(path)
    store = open_local_store(path, key, busy_timeout_s=busy_timeout_s)
    store.set_aside = kept
    return store
