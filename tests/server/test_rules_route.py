"""GET /v1/rules: the rules files the server decides by, with a content version; staff only."""

from __future__ import annotations

from app.rulebook import read_resource
from server.rules import rules_files, rules_version
from tests.server.conftest import Seeded


def test_staff_get_every_rules_file_with_a_version(seeded: Seeded) -> None:
    answer = seeded.client.get("/v1/rules", headers=seeded.headers("ana"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    files = body["files"]
    for name in ("scoring.toml", "dispositions.toml", "calling_rules.toml", "store_hours.toml"):
        assert files[name] == read_resource(name)[0]
    assert any(n.startswith("cadences/") for n in files)
    assert any(n.startswith("templates/") for n in files)
    assert any(n.startswith("scripts/") and n.endswith(".md") for n in files)
    assert body["version"] == rules_version(rules_files()) and body["unchanged"] is False
    # Asking with the version held: no files.
    again = seeded.client.get(
        "/v1/rules", params={"known": body["version"]}, headers=seeded.headers("mia")
    )
    assert again.json() == {"version": body["version"], "unchanged": True}
    stale = seeded.client.get("/v1/rules", params={"known": "old"}, headers=seeded.headers("ana"))
    assert stale.json()["files"] == files


def test_the_version_follows_every_byte_and_name() -> None:
    files = {"a.toml": "x = 1", "b.toml": "y = 2"}
    version = rules_version(files)
    assert rules_version(dict(reversed(files.items()))) == version
    assert rules_version({**files, "b.toml": "y = 3"}) != version
    assert rules_version({"a.toml": "x = 1b.toml", ".toml": "y = 2"}) != version


def test_lead_providers_and_strangers_may_not(seeded: Seeded) -> None:
    assert seeded.client.get("/v1/rules").status_code == 401
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.get("/v1/rules", headers=key).status_code == 403
