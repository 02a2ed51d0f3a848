"""Mapping database errors to StoreEnvironmentError (the PC) or StoreBugError (the program)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from app.store.errors import (
    StoreBugError,
    StoreEnvironmentError,
    StoreError,
    WrongKeyError,
    storage_errors,
    translate,
)


def _driver_error(kind: type[sqlite3.Error], message: str, code: int | None) -> sqlite3.Error:
    error = kind(message)
    if code is not None:
        error.sqlite_errorcode = code
    return error


def _wrapped(error: sqlite3.Error) -> sa_exc.DBAPIError:
    wrapper = sa_exc.DBAPIError.instance("INSERT ...", {}, error, sqlite3.Error)
    assert isinstance(wrapper, sa_exc.DBAPIError)
    return wrapper


@pytest.mark.parametrize(
    ("message", "code", "expected_type", "words"),
    [
        ("database is locked", 5, StoreEnvironmentError, "locked by another program"),
        (
            "database or disk is full",
            13,
            StoreEnvironmentError,
            "disk holding the local database is full",
        ),
        ("disk I/O error", 10 | (3 << 8), StoreEnvironmentError, "disk reported an error"),
        ("attempt to write a readonly database", 8, StoreEnvironmentError, "read-only"),
        ("database disk image is malformed", 11, StoreEnvironmentError, "damaged"),
        ("file is not a database", 26, WrongKeyError, "wrong key or not a BDC database"),
        ("unable to open database file", 14, StoreEnvironmentError, "cannot open"),
        # No code from the driver: the message is enough.
        ("database or disk is full", None, StoreEnvironmentError, "is full"),
        ("UNIQUE constraint failed: outbox.id", 2067, StoreBugError, "broke a database rule"),
        ("no such table: leeds", 1, StoreBugError, "unexpected database error"),
    ],
)
def test_sqlite_errors_are_split_by_who_can_fix_them(
    message: str, code: int | None, expected_type: type[StoreError], words: str
) -> None:
    kind: type[sqlite3.Error] = sqlite3.OperationalError
    if code == 2067:
        kind = sqlite3.IntegrityError
    elif code == 1:
        kind = sqlite3.ProgrammingError
    mapped = translate(_wrapped(_driver_error(kind, message, code)), "saving the activity")
    assert type(mapped) is expected_type
    assert str(mapped).startswith("saving the activity: ")
    assert words in str(mapped)


def test_storage_errors_reraises_with_the_cause_kept() -> None:
    original = _wrapped(_driver_error(sqlite3.OperationalError, "database is locked", 5))
    with pytest.raises(StoreEnvironmentError) as caught, storage_errors("reading the queue"):
        raise original
    assert caught.value.__cause__ is original


def test_a_bare_driver_error_is_mapped_too() -> None:
    with pytest.raises(StoreEnvironmentError, match="is full"), storage_errors("x"):
        raise _driver_error(sqlite3.OperationalError, "database or disk is full", 13)


def test_other_exceptions_pass_through_untouched() -> None:
    with pytest.raises(KeyError), storage_errors("x"):
        raise KeyError("not a database problem")
    bug = StoreBugError("already mapped")
    with pytest.raises(StoreBugError) as caught, storage_errors("x"):
        raise bug
    assert caught.value is bug
