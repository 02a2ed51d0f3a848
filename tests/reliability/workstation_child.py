"""A whole workstation process for the SIGKILL tests (run as a subprocess, never collected).

argv: SERVER_URL USERNAME DATA_DIR KEYRING_FILE TOTAL. Signs in (or resumes the saved token), opens
the real core (encrypted store, outbox, sync engine) and logs dispositions "crash-disp-N" for
N = 0..TOTAL-1 on the agent's leads, at a random pace, while the engine sends them. Like an
agent looking at the screen after a restart, it first reads its local store to see which
dispositions it already logged and carries on from there. Prints "ready", then "recorded" once all
are logged locally and "synced" when the outbox is empty; the parent SIGKILLs it at random.

The keyring is a JSON file standing in for the OS keyring (it survives the process, as the real
one does): the database key and the token must still be there after a kill.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
from pathlib import Path

import keyring.errors
from keyring.backend import KeyringBackend
from keyring.compat import properties
from sqlalchemy import select

from app.services.workstation import WorkstationConfig, build_workstation
from app.store.models import ActivityRow
from app.sync.signin import SignInService
from tests.app.sync.live import FAST_SYNC, PASSWORD, rulebook

TAG = re.compile(r"crash-disp-(\d+)")
DISPOSITIONS = ("no_answer", "left_voicemail", "busy")


class FileKeyring(KeyringBackend):
    """A keyring kept in a JSON file, written atomically on every change."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: passed explicitly, never chosen by keyring")

    def __init__(self, path: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path = path
        self.entries: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.entries))
        temporary.replace(self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get(f"{service}\n{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[f"{service}\n{username}"] = password
        self._save()

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop(f"{service}\n{username}", None) is None:
            raise keyring.errors.PasswordDeleteError(username)
        self._save()


async def main(url: str, username: str, data_dir: Path, keyring_file: Path, total: int) -> None:
    signin = SignInService.open(url, keyring_backend=FileKeyring(keyring_file))
    account = await signin.resume(username)
    if account is None:
        account = await signin.sign_in(username, PASSWORD)
    config = WorkstationConfig(server_url=url, data_dir=data_dir, sync=FAST_SYNC, api_timeout=2.0)
    workstation = build_workstation(config, account, signin, rulebook())
    await workstation.start()
    leads = [lead.id for lead in workstation.store.repository.leads_for_agent(account.user_id)]
    while not leads:
        await asyncio.sleep(0.05)
        leads = [lead.id for lead in workstation.store.repository.leads_for_agent(account.user_id)]
    with workstation.store.read("which dispositions are logged") as session:
        bodies = session.scalars(select(ActivityRow.data))
        done = {int(m.group(1)) for data in bodies if (m := TAG.search(json.dumps(data)))}
    print("ready", flush=True)
    rng = random.Random()
    for n in range(total):
        if n in done:
            continue
        await workstation.actions.log_disposition(
            rng.choice(leads), rng.choice(DISPOSITIONS), note=f"crash-disp-{n}"
        )
        await asyncio.sleep(rng.uniform(0, 0.08))
    print("recorded", flush=True)
    while workstation.store.outbox.pending_count():
        await asyncio.sleep(0.05)
    print("synced", flush=True)
    await workstation.close()


if __name__ == "__main__":
    url_arg, user_arg, data_arg, keyring_arg, total_arg = sys.argv[1:6]
    asyncio.run(main(url_arg, user_arg, Path(data_arg), Path(keyring_arg), int(total_arg)))
