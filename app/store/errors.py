"""Storage errors, split by who can fix them, and the one place sqlite errors are mapped.

StoreEnvironmentError: the PC is the problem (disk full, file locked by another program, no
permission, damaged file, wrong key). The agent or IT can act on the message; retrying later may
work. StoreBugError: the program is the problem (a constraint violated, bad SQL); retrying will not
help, so it is reported, not retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """Anything that went wrong with the local database; the message is for a person."""


class StoreEnvironmentError(StoreError):
    """The disk, the file or another process is in the way: not a bug in this program."""


class StoreBugError(StoreError):
    """A programming error or an integrity violation: retrying will not help."""


class WrongKeyError(StoreEnvironmentError):
    """The file cannot be decrypted with the key given, or is not a database at all."""


class DatabaseTooNewError(StoreError):
    """The file was migrated by a newer program than this one; opening it could damage it."""


WRONG_KEY_MESSAGE = "cannot open the local database: wrong key or not a BDC database ({path})"

# Primary SQLite result codes (the low byte of extended codes).
_SQLITE_PERM = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_NOMEM = 7
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_PROTOCOL = 15
_SQLITE_CONSTRAINT = 19
_SQLITE_AUTH = 23
_SQLITE_NOTADB = 26

_ENVIRONMENT_MESSAGES = {
    _SQLITE_BUSY: "the local database is locked by another program (is BDC Workstation "
    "already running for this user?)",
    _SQLITE_LOCKED: "the local database is locked by another program (is BDC Workstation "
    "already running for this user?)",
    _SQLITE_FULL: "the disk holding the local database is full; free some space",
    _SQLITE_PERM: "no permission to use the local database file",
    _SQLITE_AUTH: "no permission to use the local database file",
    _SQLITE_READONLY: "the local database file is read-only; check its permissions",
    _SQLITE_CANTOPEN: "cannot open the local database file; check the folder exists and is "
    "writable",
    _SQLITE_IOERR: "the disk reported an error reading or writing the local database",
    _SQLITE_CORRUPT: "the local database file is damaged",
    _SQLITE_NOTADB: "cannot open the local database: wrong key or not a BDC database",
    _SQLITE_NOMEM: "the computer ran out of memory while using the local database",
    _SQLITE_PROTOCOL: "the local database is locked by another program",
}

# Used when the driver does not expose an error code (older drivers): match the message text.
_MESSAGE_HINTS = (
    ("database is locked", _SQLITE_BUSY),
    ("database table is locked", _SQLITE_LOCKED),
    ("disk is full", _SQLITE_FULL),
    ("database or disk is full", _SQLITE_FULL),
    ("readonly database", _SQLITE_READONLY),
    ("unable to open database", _SQLITE_CANTOPEN),
    ("disk i/o error", _SQLITE_IOERR),
    ("malformed", _SQLITE_CORRUPT),
    ("file is not a database", _SQLITE_NOTADB),
)


def _sqlite_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(error).lower()
    for hint, hinted in _MESSAGE_HINTS:
        if hint in text:
            return hinted
    return None


def translate(error: BaseException, doing: str) -> StoreError:
    """The StoreError for a driver or SQLAlchemy error raised while `doing` something."""
    if isinstance(error, StoreError):
        return error
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    code = _sqlite_code(original) if original is not None else None
    detail = str(original) if original is not None else str(error)
    if code == _SQLITE_NOTADB:
        return WrongKeyError(f"{doing}: {_ENVIRONMENT_MESSAGES[code]}")
    if code in _ENVIRONMENT_MESSAGES:
        return StoreEnvironmentError(f"{doing}: {_ENVIRONMENT_MESSAGES[code]} ({detail})")
    if code == _SQLITE_CONSTRAINT or isinstance(error, sa_exc.IntegrityError):
        return StoreBugError(f"{doing}: the data broke a database rule ({detail})")
    if isinstance(error, sa_exc.OperationalError | sa_exc.DisconnectionError | OSError):
        return StoreEnvironmentError(f"{doing}: the local database failed ({detail})")
    return StoreBugError(f"{doing}: unexpected database error ({detail})")


@contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Re-raise database errors from the block as StoreEnvironmentError or StoreBugError."""
    try:
        yield
    except StoreError:
        raise
    except (sa_exc.SQLAlchemyError, OSError) as error:
        raise translate(error, doing) from error
    except Exception as error:
        # The drivers' own exception classes (sqlite3.Error, sqlcipher3.Error) without SQLAlchemy.
        if type(error).__module__.split(".")[0] in ("sqlite3", "sqlcipher3"):
            raise translate(error, doing) from error
        raise
