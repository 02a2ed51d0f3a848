"""The server's rules cached on the workstation: downloaded when their version changes, checked
with the same parsers as the packaged files (a broken set is refused with file, line and field,
and the previous set kept), stored with fresh-as-of, and turned into the workstation's Rulebook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.rulebook import load_rulebook
from app.store.repository import Dataset
from app.sync.engine import Notice, NoticeKind
from app.sync.rules import cached_rulebook, cached_version, refresh_rules, rulebook_from_files
from server.rules import rules_files, rules_version
from tests.app.sync.live import Floor


class FakeRulesApi:
    """Answers GET /v1/rules with a set of files a test chose."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.asked: list[Any] = []

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        assert path == "/v1/rules"
        self.asked.append(params)
        version = rules_version(self.files)
        if params and params.get("known") == version:
            return {"version": version, "unchanged": True}
        return {"version": version, "unchanged": False, "files": self.files}


def test_the_workstation_caches_the_servers_rules_and_builds_its_rulebook(floor: Floor) -> None:
    notices: list[Notice] = []

    async def main() -> None:
        ana, _ = await floor.open("ana", start=False)
        ana.engine.on_notice(notices.append)
        assert cached_rulebook(ana.store) is None  # nothing yet: the packaged rules apply
        began = datetime.now(UTC)
        await ana.engine.pull_once()
        try:
            assert cached_version(ana.store) == rules_version(rules_files())
            fresh = ana.store.repository.freshness(Dataset.RULES)
            assert fresh is not None and fresh >= began - timedelta(seconds=1)
            rulebook = cached_rulebook(ana.store)
            assert rulebook == load_rulebook()
            assert [n.kind for n in notices] == [NoticeKind.RULES_UPDATED]
            # Unchanged on the server: asked with the version held, nothing downloaded again.
            later = datetime.now(UTC) + timedelta(minutes=10)
            update = await refresh_rules(ana.api, ana.store, later)
            assert update.outcome == "unchanged"
            assert ana.store.repository.freshness(Dataset.RULES) == later
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_broken_set_is_refused_with_file_line_and_field_and_the_previous_kept(
    floor: Floor,
) -> None:
    async def main() -> None:
        ana, _ = await floor.open("ana", start=False)
        try:
            good = rules_files()
            assert (
                await refresh_rules(FakeRulesApi(good), ana.store, datetime.now(UTC))
            ).outcome == "updated"
            broken = dict(good)
            broken["dispositions.toml"] = good["dispositions.toml"].replace(
                'hotkey = "F2"', 'hotkey = "Q"', 1
            )
            assert broken["dispositions.toml"] != good["dispositions.toml"]
            update = await refresh_rules(FakeRulesApi(broken), ana.store, datetime.now(UTC))
            assert update.outcome == "refused"
            assert "resources/dispositions.toml:" in update.message
            assert "hotkey" in update.message
            assert cached_version(ana.store) == rules_version(good)
            assert cached_rulebook(ana.store) == load_rulebook()
            # A set with a file missing is refused too.
            partial = {k: v for k, v in good.items() if k != "calling_rules.toml"}
            update = await refresh_rules(FakeRulesApi(partial), ana.store, datetime.now(UTC))
            assert update.outcome == "refused" and "calling_rules.toml" in update.message
            assert cached_version(ana.store) == rules_version(good)
        finally:
            await floor.close_all()

    asyncio.run(main())


def test_a_changed_set_replaces_the_cached_one(floor: Floor) -> None:
    async def main() -> None:
        ana, _ = await floor.open("ana", start=False)
        try:
            files = rules_files()
            await refresh_rules(FakeRulesApi(files), ana.store, datetime.now(UTC))
            changed = dict(files)
            changed["dispositions.toml"] = files["dispositions.toml"].replace(
                'label = "No answer"', 'label = "No answer (rang out)"', 1
            )
            api = FakeRulesApi(changed)
            update = await refresh_rules(api, ana.store, datetime.now(UTC))
            assert update.outcome == "updated" and update.version == rules_version(changed)
            assert api.asked == [{"known": rules_version(files)}]
            rulebook = cached_rulebook(ana.store)
            assert rulebook is not None
            assert rulebook.dispositions.get("no_answer").label == "No answer (rang out)"
            assert rulebook_from_files(changed) == rulebook
        finally:
            await floor.close_all()

    asyncio.run(main())
