"""`make package` builds what IT installs, and the built program passes its own self-test.

Builds once per run into a scratch folder (about two minutes on two cores), unless
BDC_PACKAGE_DIST names a folder `make package` already filled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import app
from app.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
VERSION = app.__version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("BDC_PACKAGE_DIST")
    if given:
        yield Path(given)
        return
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHON": sys.executable, "DIST": str(out)}
    built = subprocess.run(
        [str(ROOT / "packaging" / "build.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield out


def clean_env(home: Path) -> dict[str, str]:
    """What a fresh PC gives the program: no venv, no project on the path, an empty home."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_DIRS": str(home / "etc-xdg"),
    }


def self_test(program: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), "--self-test"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_built_program_passes_its_self_test(dist: Path, tmp_path: Path) -> None:
    result = self_test(dist / "bdc-workstation" / "bdc-workstation", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout
    assert "ok   encrypted local database" in result.stdout
    assert "ok   main window" in result.stdout
    # No secure keyring on a bare build machine: the self-test must say so, not hide it.
    assert "ok   secure password store: session-only mode" in result.stdout


def test_the_self_test_fails_loudly_on_a_broken_fleet_file(dist: Path, tmp_path: Path) -> None:
    fleet = tmp_path / "etc-xdg" / "bdc-workstation" / "fleet.toml"
    fleet.parent.mkdir(parents=True)
    fleet.write_text('[settings]\ndialer = "fax"\n')
    result = self_test(dist / "bdc-workstation" / "bdc-workstation", tmp_path)
    assert result.returncode == 1
    assert f"FAIL settings: ResourceError: {fleet}:2 [settings.dialer]" in result.stdout


def test_the_deb_installs_a_working_program_with_menu_entry_and_tel_handler(
    dist: Path, tmp_path: Path
) -> None:
    deb = dist / f"bdc-workstation_{VERSION}_amd64.deb"
    fields = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    assert f"Version: {VERSION}" in fields
    assert "Depends:" in fields and "libxcb-cursor0" in fields

    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    desktop = (root / "usr/share/applications/bdc-workstation.desktop").read_text()
    assert "MimeType=x-scheme-handler/tel;x-scheme-handler/callto;" in desktop
    assert "Exec=/opt/bdc-workstation/bdc-workstation %u" in desktop
    assert (root / "usr/share/icons/hicolor/scalable/apps/bdc-workstation.svg").is_file()
    assert os.readlink(root / "usr/bin/bdc-workstation") == "/opt/bdc-workstation/bdc-workstation"
    example = root / "usr/share/doc/bdc-workstation/fleet.toml.example"
    assert load_settings(example, tmp_path / "none.toml").settings.server_url.startswith("https")

    result = self_test(root / "opt/bdc-workstation/bdc-workstation", tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_the_package_keeps_user_data(dist: Path, tmp_path: Path) -> None:
    control = tmp_path / "control"
    deb = dist / f"bdc-workstation_{VERSION}_amd64.deb"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    postrm = (control / "postrm").read_text()
    # The only thing ever deleted is IT's fleet file, and only on purge; never a home folder.
    deleting = [line for line in postrm.splitlines() if line.strip().startswith("rm ")]
    assert deleting == ["    rm -f /etc/xdg/bdc-workstation/fleet.toml"]
    assert "$HOME" not in postrm and "/home" not in postrm


def test_the_server_bundle_migrates_a_database(dist: Path, tmp_path: Path) -> None:
    db = tmp_path / "leads.db"
    result = subprocess.run(
        [str(dist / "bdc-server" / "bdc-server"), "migrate", "--db", f"sqlite:///{db}"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is at the newest schema" in result.stdout
    assert (dist / f"bdc-server-{VERSION}-linux-x86_64.tar.gz").is_file()


def test_the_fleet_example_documents_every_setting() -> None:
    from app.settings import SETTING_NAMES

    example = tomllib.loads((ROOT / "packaging" / "fleet.toml.example").read_text())
    assert set(example["settings"]) == set(SETTING_NAMES)
