from __future__ import annotations

from pathlib import Path

from app.local_data import local_data_folders, remove_local_data


def test_removes_only_the_folders_that_exist(tmp_path: Path) -> None:
    data, config, missing = tmp_path / "data", tmp_path / "config", tmp_path / "logs"
    (data / "local-abc.db").parent.mkdir(parents=True)
    (data / "local-abc.db").write_bytes(b"x")
    config.mkdir()
    keep = tmp_path / "other"
    keep.mkdir()
    assert remove_local_data((data, config, missing)) == [data, config]
    assert not data.exists() and not config.exists()
    assert keep.is_dir()


def test_the_folders_are_named_after_the_program() -> None:
    assert all("bdc-workstation" in str(folder) for folder in local_data_folders())
