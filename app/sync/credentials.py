"""Where the sign-in token and the local database key live: the OS keyring, or nowhere durable.

One keyring service per server ("BDC Workstation (crm.example.com)") and one entry per user and
purpose ("token:ann", "db-key:ann"). When this PC has no secure keyring the program says so and
keeps secrets in memory for the session only: it never falls back to a plaintext file.
"""

from __future__ import annotations

import abc
from urllib.parse import urlsplit

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.compat import properties

PROGRAM_NAME = "BDC Workstation"

NO_KEYRING_MESSAGE = (
    "No secure password store was found on this PC: you will stay signed in only until you "
    "close the program, and nothing is cached on disk."
)


class SecretStoreError(Exception):
    """The password store refused a request (locked, denied, or broke); the message says which."""


def service_name(server_url: str) -> str:
    """The keyring service for one server: the program's name and the server's host[:port]."""
    parts = urlsplit(server_url if "//" in server_url else f"//{server_url}")
    host = (parts.hostname or server_url.strip()).lower()
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{PROGRAM_NAME} ({host})"


def token_name(user: str) -> str:
    return f"token:{user}"


def db_key_name(user: str) -> str:
    return f"db-key:{user}"


class SecretStore(abc.ABC):
    """Secrets by name for one server. `get` returns None for a name never set."""

    @abc.abstractmethod
    def get(self, name: str) -> str | None: ...

    @abc.abstractmethod
    def set(self, name: str, value: str) -> None: ...

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Forget `name`; forgetting one that is not there is fine (sign-out twice)."""


class SessionSecretStore(SecretStore):
    """Secrets in this process's memory only: gone when the program closes."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def set(self, name: str, value: str) -> None:
        self._values[name] = value

    def delete(self, name: str) -> None:
        self._values.pop(name, None)


class KeyringSecretStore(SecretStore):
    """Secrets in the OS keyring under one service name (see service_name)."""

    def __init__(self, service: str, backend: KeyringBackend | None = None) -> None:
        self.service = service
        self._backend = backend

    def _keyring(self) -> KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    def get(self, name: str) -> str | None:
        try:
            return self._keyring().get_password(self.service, name)
        except keyring.errors.KeyringError as error:
            raise SecretStoreError(
                f"the password store could not read {name!r}: {error}"
            ) from error

    def set(self, name: str, value: str) -> None:
        try:
            self._keyring().set_password(self.service, name, value)
        except keyring.errors.KeyringError as error:
            raise SecretStoreError(
                f"the password store could not save {name!r}: {error}"
            ) from error

    def delete(self, name: str) -> None:
        try:
            self._keyring().delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            return  # not there: already signed out
        except keyring.errors.KeyringError as error:
            raise SecretStoreError(
                f"the password store could not remove {name!r}: {error}"
            ) from error


def _is_insecure(backend: KeyringBackend) -> bool:
    """The fail/null backends store nothing; keyrings.alt's plaintext and weakly "encrypted"
    file backends are a plaintext file in all but name."""
    module = type(backend).__module__
    if module.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return True
    if module.startswith("keyrings.alt"):
        return True
    children = getattr(backend, "backends", None)  # the chainer: secure if any child is
    if children is not None:
        return all(_is_insecure(child) for child in children)
    return False


def open_secret_store(
    service: str, *, backend: KeyringBackend | None = None
) -> tuple[SecretStore, bool, str]:
    """(store, secure, message for the user). Without a usable secure keyring: a
    SessionSecretStore, secure False and NO_KEYRING_MESSAGE."""
    try:
        chosen = backend if backend is not None else keyring.get_keyring()
        if _is_insecure(chosen):
            return SessionSecretStore(), False, NO_KEYRING_MESSAGE
        # A backend can exist and still not work (no D-Bus session, a locked collection the
        # user refuses to unlock): find out now, not at the first sign-in.
        chosen.get_password(service, "probe")
    except Exception:
        # NoKeyringError, InitError, and D-Bus or OS errors some backends raise as their own
        # types: whatever the cause, this PC has no working secure store.
        return SessionSecretStore(), False, NO_KEYRING_MESSAGE
    name = getattr(chosen, "name", type(chosen).__name__)
    return (
        KeyringSecretStore(service, chosen),
        True,
        f"Your sign-in is kept in this PC's secure password store ({name}).",
    )


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in this process's memory: the demo's sign-in, and tests. Passed
    explicitly (SignInService.open(keyring_backend=...)); keyring never picks it by itself."""

    @properties.classproperty
    def priority(cls) -> float:
        # Every backend class registers itself with keyring; a priority that raises makes this
        # one "not viable", so keyring's own choice never lands on it.
        raise RuntimeError("in-memory keyring: passed explicitly, never chosen by keyring")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
