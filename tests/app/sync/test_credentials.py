"""Credentials: the OS keyring when there is a secure one, the session only when there is not."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from app.store import database_key
from app.sync.credentials import (
    NO_KEYRING_MESSAGE,
    KeyringSecretStore,
    MemoryKeyring,
    SecretStoreError,
    SessionSecretStore,
    db_key_name,
    open_secret_store,
    service_name,
    token_name,
)

SERVICE = "BDC Workstation (crm.example.com)"


class BrokenKeyring(MemoryKeyring):
    """A backend that exists but cannot be reached (e.g. no D-Bus session)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.InitError("no D-Bus session bus")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("collection is locked")


@pytest.fixture
def installed() -> Iterator[MemoryKeyring]:
    """Install an in-memory keyring as the process's keyring for this test only."""
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        yield memory
    finally:
        keyring.set_keyring(previous)


def test_service_is_named_after_the_program_and_server() -> None:
    assert service_name("https://crm.example.com/api/") == SERVICE
    assert service_name("https://CRM.example.com:8443") == "BDC Workstation (crm.example.com:8443)"
    assert service_name("crm.example.com") == SERVICE
    assert (token_name("ann"), db_key_name("ann")) == ("token:ann", "db-key:ann")


def test_a_secure_keyring_keeps_the_token_under_the_server_service(
    installed: MemoryKeyring,
) -> None:
    store, secure, message = open_secret_store(SERVICE)
    assert isinstance(store, KeyringSecretStore)
    assert secure is True
    assert "secure password store" in message
    store.set(token_name("ann"), "tok-123")
    assert installed.entries == {(SERVICE, "token:ann"): "tok-123"}
    assert keyring.get_password(SERVICE, "token:ann") == "tok-123"
    assert store.get("token:ann") == "tok-123"
    store.delete("token:ann")  # sign-out
    store.delete("token:ann")  # twice is fine
    assert store.get("token:ann") is None
    assert installed.entries == {}


def test_the_database_key_is_created_once_in_the_keyring(installed: MemoryKeyring) -> None:
    store, _, _ = open_secret_store(SERVICE)
    key = database_key(store, "ann")
    assert installed.entries == {(SERVICE, "db-key:ann"): key}
    assert database_key(store, "ann") == key


def test_no_keyring_means_session_only_said_plainly() -> None:
    store, secure, message = open_secret_store(SERVICE, backend=fail.Keyring())  # type: ignore[no-untyped-call]
    assert isinstance(store, SessionSecretStore)
    assert secure is False
    assert message == (
        "No secure password store was found on this PC: you will stay signed in only until "
        "you close the program, and nothing is cached on disk."
    )
    assert message == NO_KEYRING_MESSAGE
    store.set("token:ann", "tok")
    assert store.get("token:ann") == "tok"
    store.delete("token:ann")
    store.delete("token:ann")
    assert store.get("token:ann") is None


def test_the_process_default_on_a_bare_machine_is_session_only() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        store, secure, message = open_secret_store(SERVICE)
    finally:
        keyring.set_keyring(previous)
    assert (type(store), secure, message) == (SessionSecretStore, False, NO_KEYRING_MESSAGE)


def test_a_keyring_that_cannot_be_reached_falls_back_to_the_session() -> None:
    store, secure, message = open_secret_store(SERVICE, backend=BrokenKeyring())
    assert (type(store), secure, message) == (SessionSecretStore, False, NO_KEYRING_MESSAGE)


def test_test_backends_are_never_chosen_by_keyring_itself() -> None:
    viable = set(KeyringBackend.get_viable_backends())
    assert MemoryKeyring not in viable and BrokenKeyring not in viable


def test_plaintext_file_backends_are_not_accepted_as_secure() -> None:
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})
    store, secure, _ = open_secret_store(SERVICE, backend=plaintext())
    assert (type(store), secure) == (SessionSecretStore, False)


def test_a_keyring_failing_later_is_a_clear_error() -> None:
    store = KeyringSecretStore(SERVICE, BrokenKeyring())
    with pytest.raises(SecretStoreError, match=r"could not save 'token:ann'.*locked"):
        store.set("token:ann", "tok")
    with pytest.raises(SecretStoreError, match="could not read 'token:ann'"):
        store.get("token:ann")
