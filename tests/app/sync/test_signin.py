"""Signing in against a real lead API: the token in the keyring under the program's and server's
name, the last user remembered, sign-out forgets the token, a wrong password or a plain-http
remote server refused; and a 410 on the change feed rebuilds the local copy with progress."""

from __future__ import annotations

import asyncio

import pytest

from app.sync.api import SignInExpired
from app.sync.credentials import service_name
from app.sync.engine import NoticeKind, SyncStatus
from app.sync.signin import SignInError, SignInService, check_server_url
from tests.app.sync.live import PASSWORD, Floor, LiveServer, MemoryKeyring


def test_sign_in_keeps_the_token_in_the_keyring_and_remembers_the_user(live: LiveServer) -> None:
    backend = MemoryKeyring()

    async def main() -> None:
        signin = SignInService.open(live.base_url, keyring_backend=backend)
        assert signin.secure and signin.last_user() is None
        account = await signin.sign_in("ana", PASSWORD)
        assert (account.user_id, account.role, account.store_id) == (
            "user-ana",
            "agent",
            "lakeside",
        )
        service = service_name(live.base_url)
        assert service == f"BDC Workstation (127.0.0.1:{live.port})"
        assert backend.entries[(service, "token:ana")] == account.token
        assert account.token not in repr(account)
        # The next start: the last user, signed in with the saved token.
        again = SignInService.open(live.base_url, keyring_backend=backend)
        assert again.last_user() == "ana"
        resumed = await again.resume()
        assert resumed is not None and resumed.token == account.token
        await again.sign_out(resumed)
        assert (service, "token:ana") not in backend.entries
        assert again.last_user() == "ana"
        assert await again.resume() is None
        # The revoked token no longer works on the server either.
        api = again.new_api(account.token)
        try:
            with pytest.raises(SignInExpired):
                await api.me()
        finally:
            await api.aclose()

    asyncio.run(main())


def test_a_wrong_password_is_a_clear_error_and_stores_nothing(live: LiveServer) -> None:
    backend = MemoryKeyring()

    async def main() -> None:
        signin = SignInService.open(live.base_url, keyring_backend=backend)
        with pytest.raises(SignInError, match="wrong username or password"):
            await signin.sign_in("ana", "not the password")
        assert backend.entries == {} or all(k[1] == "probe" for k in backend.entries)

    asyncio.run(main())


def test_an_unreachable_server_is_a_clear_error() -> None:
    async def main() -> None:
        signin = SignInService.open("http://127.0.0.1:9", keyring_backend=MemoryKeyring())
        with pytest.raises(SignInError, match="cannot reach the server"):
            await signin.sign_in("ana", PASSWORD)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://leads.example-dealer.com/", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://leads.example-dealer.com", False),  # TLS cannot be turned off
        ("ftp://leads.example-dealer.com", False),
        ("leads.example-dealer.com", False),
    ],
)
def test_server_urls_must_use_tls_unless_on_this_pc(url: str, ok: bool) -> None:
    if ok:
        assert check_server_url(url) == url.rstrip("/")
    else:
        with pytest.raises(SignInError, match="https://"):
            check_server_url(url)


def test_a_cursor_the_server_cannot_continue_triggers_a_full_resync_with_progress(
    floor: Floor,
) -> None:
    seen: list[SyncStatus] = []

    async def main() -> None:
        ana, _ = await floor.open("ana", start=False)
        try:
            lead_ids = [await asyncio.to_thread(floor.live.post_lead, f"R{n}") for n in range(3)]
            await ana.engine.pull_once()
            assert all(ana.store.repository.get_lead(i) for i in lead_ids)
            ana.store.repository.set_cursor("999999")  # e.g. the server's database was rebuilt
            notices = []
            ana.engine.on_notice(notices.append)
            ana.engine.subscribe(seen.append)
            await ana.engine.pull_once()
            assert [n.kind for n in notices] == [NoticeKind.RESYNCED]
            assert int(ana.store.repository.cursor() or 0) < 999999
            assert all(ana.store.repository.get_lead(i) for i in lead_ids)
            new = await asyncio.to_thread(floor.live.post_lead, "AfterResync")
            await ana.engine.pull_once()
            assert ana.store.repository.get_lead(new) is not None
        finally:
            await floor.close_all()

    asyncio.run(main())
    progress = [s.snapshot_loaded for s in seen if s.snapshot_loaded is not None]
    assert progress[0] == 0 and progress[-1] >= 3
    assert seen[-1].snapshot_loaded is None
