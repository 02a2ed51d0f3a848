"""The Windows recipe (Inno Setup script, workflow, docs) checked statically on Linux.

No Windows runner here: these tests pin what IT relies on and what a Windows-only mistake would
break silently — a per-machine install, a stable AppId (upgrades in place), tel:/callto:
registered as a candidate handler and never forced as the default, the fleet file where
app/settings.py reads it on Windows, signing secrets reached only through `secrets.` in `env:`,
the installed program's self-test after the silent install, uninstall keeping user data.
`packaging/windows/check-installer-wine.sh` compiles and runs the installer under Wine when
BDC_ISCC names Inno Setup's ISCC.exe (last test here).
"""

from __future__ import annotations

import ntpath
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import platformdirs
import platformdirs.windows
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ISS = ROOT / "packaging" / "windows" / "bdc-workstation.iss"
WORKFLOW = ROOT / ".github" / "workflows" / "windows.yml"
DEPLOY = ROOT / "docs" / "deploy.md"
ASSOCIATIONS = ROOT / "packaging" / "windows" / "DefaultAssociations.xml"
SPEC = ROOT / "packaging" / "pyinstaller" / "bdc.spec"

# Changing the AppId turns every upgrade into a second, parallel install: never change it.
APP_ID = "{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}"
SIGNING_SECRETS = {"WINDOWS_SIGNING_PFX_BASE64", "WINDOWS_SIGNING_PASSWORD"}

# What SHGetKnownFolderPath answers on a default Windows 10/11 install.
WINDOWS_FOLDERS = {
    "CSIDL_COMMON_APPDATA": r"C:\ProgramData",
    "CSIDL_LOCAL_APPDATA": r"C:\Users\agent\AppData\Local",
    "CSIDL_APPDATA": r"C:\Users\agent\AppData\Roaming",
}
INNO_CONSTANTS = {
    "{app}": r"C:\Program Files\BDC Workstation",
    "{commonappdata}": r"C:\ProgramData",
    "{autopf}": r"C:\Program Files",
    "{localappdata}": r"C:\Users\agent\AppData\Local",
}


# --- reading the .iss -------------------------------------------------------------------------


def iss_text() -> str:
    return ISS.read_text(encoding="utf-8")


def iss_defines() -> dict[str, str]:
    return dict(re.findall(r'^#define\s+(\w+)\s+"([^"]*)"', iss_text(), re.M))


def expand(value: str) -> str:
    """ISPP's {#Name} and Inno's folder constants, as on a default Windows install."""
    defines = iss_defines()
    value = re.sub(r"\{#(\w+)\}", lambda m: defines[m.group(1)], value)
    value = value.replace("{{", "{")
    for constant, path in INNO_CONSTANTS.items():
        value = value.replace(constant, path)
    return value


def iss_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in iss_text().splitlines():
        line = raw.strip()
        if current == "code":
            sections[current].append(raw)
            continue
        if not line or line.startswith(";") or line.startswith("#") or line.startswith("//"):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = header.group(1).lower()
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    return sections


def setup_directives() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in iss_sections()["setup"]:
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def entries(section: str) -> list[dict[str, str]]:
    """`Name: "value"; Flags: a b` lines as dicts, Inno's doubled quotes undone."""
    out = []
    for line in iss_sections().get(section, []):
        entry: dict[str, str] = {}
        for match in re.finditer(r'(\w+):\s*("(?:[^"]|"")*"|[^;]*)\s*(?:;|$)', line):
            value = match.group(2).strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1].replace('""', '"')
            entry[match.group(1)] = value
        out.append(entry)
    return out


def registry() -> list[dict[str, str]]:
    return entries("registry")


def value_of(subkey: str, name: str) -> dict[str, str]:
    found = [
        e
        for e in registry()
        if expand(e["Subkey"]) == subkey and expand(e.get("ValueName", "")) == name
    ]
    assert len(found) == 1, f"{subkey} [{name}]: {len(found)} entries"
    return found[0]


# --- reading the workflow ---------------------------------------------------------------------


def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def job() -> dict[str, Any]:
    jobs = workflow()["jobs"]
    assert len(jobs) == 1
    return next(iter(jobs.values()))


def steps() -> list[dict[str, Any]]:
    return job()["steps"]


def step_index(predicate: Any, what: str) -> int:
    found = [i for i, step in enumerate(steps()) if predicate(step)]
    assert found, f"the workflow has no step that {what}"
    return found[0]


# --- where app/settings.py looks on Windows ---------------------------------------------------


@pytest.fixture
def on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs answering as on Windows (its Windows class, the default known folders)."""
    monkeypatch.delenv("BDC_FLEET_CONFIG", raising=False)
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.windows.Windows)
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", WINDOWS_FOLDERS.__getitem__)


def windows_path(path: Path) -> str:
    return ntpath.normpath(str(path).replace("/", "\\"))


def windows_fleet_file() -> str:
    from app.settings import fleet_path

    return windows_path(fleet_path())


@pytest.mark.usefixtures("on_windows")
def test_the_installer_creates_the_fleet_folder_app_settings_reads_on_windows() -> None:
    fleet = windows_fleet_file()
    assert fleet == r"C:\ProgramData\bdc-workstation\fleet.toml"
    assert expand(iss_defines()["FleetDir"]) + r"\fleet.toml" == fleet
    dirs = [expand(e["Name"]) for e in entries("dirs")]
    assert ntpath.dirname(fleet) in dirs
    # The [Code] copy for /FLEETCONFIG writes into that folder under that name.
    assert "Dir + '\\fleet.toml'" in iss_text()


@pytest.mark.usefixtures("on_windows")
def test_docs_example_and_workflow_name_the_same_windows_paths() -> None:
    from app.settings import user_path

    fleet = windows_fleet_file()
    docs = DEPLOY.read_text(encoding="utf-8")
    assert f"`{fleet}`" in docs
    assert fleet in (ROOT / "packaging" / "fleet.toml.example").read_text(encoding="utf-8")
    assert job()["env"]["FLEET_FILE"] == fleet
    user = windows_path(user_path()).replace(WINDOWS_FOLDERS["CSIDL_LOCAL_APPDATA"], "")
    assert f"%LOCALAPPDATA%{user}" in docs


@pytest.mark.usefixtures("on_windows")
def test_uninstall_never_touches_users_local_data() -> None:
    from app.local_data import local_data_folders

    user_roots = ("{localappdata}", "{userappdata}", "{userdocs}", "{%USERPROFILE")
    for entry in entries("uninstalldelete") + entries("installdelete"):
        assert not entry["Name"].startswith(user_roots), entry
        assert not entry["Name"].startswith("{commonappdata}"), entry
    # The program's per-user folders are under the user's profile, not the install folder.
    for folder in local_data_folders():
        assert windows_path(folder).startswith(WINDOWS_FOLDERS["CSIDL_LOCAL_APPDATA"])
    fleet_dir = next(e for e in entries("dirs") if "FleetDir" in e["Name"])
    assert "uninsneveruninstall" in fleet_dir.get("Flags", "").split()
    assert "--remove-local-data" in DEPLOY.read_text(encoding="utf-8")


# --- the .iss ---------------------------------------------------------------------------------


def test_per_machine_install_into_program_files() -> None:
    setup = setup_directives()
    assert setup["PrivilegesRequired"] == "admin"
    assert setup["PrivilegesRequiredOverridesAllowed"] == ""  # no per-user fallback dialog
    assert expand(setup["DefaultDirName"]) == r"C:\Program Files\BDC Workstation"
    assert setup["ArchitecturesInstallIn64BitMode"] == "x64compatible"  # not Program Files (x86)
    assert job()["env"]["INSTALL_DIR"] == expand(setup["DefaultDirName"])


def test_the_app_id_is_stable_so_upgrades_replace_the_installed_copy() -> None:
    setup = setup_directives()
    assert expand(setup["AppId"]) == APP_ID, "changing AppId breaks upgrade in place"
    # The old bundle goes first: no stale DLL of a previous version beside the new ones.
    assert {"Type": "filesandordirs", "Name": r"{app}\_internal"} in entries("installdelete")
    # The workflow and the docs find the installation by the same id.
    assert APP_ID.strip("{}") in WORKFLOW.read_text(encoding="utf-8")
    assert f"{APP_ID}_is1" in DEPLOY.read_text(encoding="utf-8")


def test_the_installer_packs_what_pyinstaller_builds() -> None:
    defines = iss_defines()
    spec = SPEC.read_text(encoding="utf-8")
    name = defines["AppExe"].removesuffix(".exe")
    assert re.search(rf'^\w+ = build\(\s*"{name}"', spec, re.M), f"bdc.spec builds no {name}"
    sources = [e["Source"] for e in entries("files")]
    assert rf"..\..\dist\{name}\*" in sources
    # Every other source file is in the repository.
    for source in sources:
        if "dist" not in source:
            assert (ISS.parent / source.replace("\\", "/")).is_file(), source
    # make_icons.py writes the icon the installer uses.
    icon = setup_directives()["SetupIconFile"].replace("\\", "/")
    assert (ISS.parent / icon).resolve() == ROOT / "build" / "icons" / "bdc-workstation.ico"
    assert '"bdc-workstation.ico"' in (ROOT / "packaging" / "make_icons.py").read_text()


def test_tel_and_callto_are_registered_as_candidate_handlers() -> None:
    prog_id = iss_defines()["ProgId"]
    app = r"C:\Program Files\BDC Workstation\bdc-workstation.exe"
    classes = rf"Software\Classes\{prog_id}"
    command = value_of(rf"{classes}\shell\open\command", "")
    assert expand(command["ValueData"]) == f'"{app}" "%1"'
    assert value_of(classes, "URL Protocol")["ValueData"] == ""
    assert "uninsdeletekey" in value_of(classes, "")["Flags"].split()

    capabilities = r"Software\BDC Workstation\Capabilities"
    for scheme in ("tel", "callto"):
        entry = value_of(rf"{capabilities}\URLAssociations", scheme)
        assert entry["ValueData"] == "{#ProgId}"
    assert value_of(capabilities, "ApplicationName")["ValueData"] == "{#AppName}"
    assert "uninsdeletekey" in value_of(capabilities, "ApplicationName")["Flags"].split()
    registered = value_of(r"Software\RegisteredApplications", "BDC Workstation")
    assert registered["ValueData"] == capabilities
    assert "uninsdeletevalue" in registered["Flags"].split()
    assert setup_directives()["ChangesAssociations"] == "yes"


def test_the_installer_never_forces_itself_as_the_default_handler() -> None:
    for entry in registry():
        subkey = expand(entry["Subkey"]).lower()
        assert entry["Root"] == "HKLM", entry  # machine-wide, never a user's hive
        assert "userchoice" not in subkey, entry
        assert not re.fullmatch(r"software\\classes\\(tel|callto)(\\.*)?", subkey), entry
        assert "fileexts" not in subkey, entry


def test_default_associations_file_for_group_policy_matches_the_registration() -> None:
    root = ET.parse(ASSOCIATIONS).getroot()
    assert root.tag == "DefaultAssociations"
    found = {a.get("Identifier"): a.get("ProgId") for a in root.iter("Association")}
    assert found == {"tel": iss_defines()["ProgId"], "callto": iss_defines()["ProgId"]}
    assert {"Source": "DefaultAssociations.xml", "DestDir": "{app}", "Flags": "ignoreversion"} in (
        entries("files")
    )


def test_fleet_folder_is_locked_down_and_a_bad_fleet_path_fails_the_install() -> None:
    code = "\n".join(iss_sections()["code"])
    assert "function PrepareToInstall" in code  # failing there = exit code 7, nothing installed
    assert "{param:FLEETCONFIG|}" in code
    assert "not FileExists(Source)" in code
    # icacls by SID: SYSTEM and Administrators full, Users read only, inheritance removed.
    assert "/inheritance:r" in code
    for ace in ("*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F", "*S-1-5-32-545:(OI)(CI)RX"):
        assert ace in code
    # No message box on failure: a silent install must report it through its exit code.
    assert "MsgBox" not in code


def test_the_installer_is_signed_when_the_workflow_defines_the_sign_tool() -> None:
    text = iss_text()
    assert re.search(r"#ifdef SignTool\s+SignTool=\{#SignTool\}\s+SignedUninstaller=yes", text)


# --- the workflow -----------------------------------------------------------------------------


def test_the_workflow_is_valid_yaml_for_a_windows_runner() -> None:
    data = workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers
    assert "tags" in triggers["push"]
    assert str(job()["runs-on"]).startswith("windows")
    assert data["permissions"] == {"contents": "read"}
    assert job()["timeout-minutes"] <= 120
    checkout = next(s for s in steps() if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False


def test_the_installed_program_self_tests_after_a_silent_install() -> None:
    build = step_index(lambda s: "ISCC.exe" in s.get("run", ""), "runs ISCC")
    install = step_index(
        lambda s: (
            "/VERYSILENT" in s.get("run", "")
            and "SETUP_EXE" in s.get("run", "")
            and "/FLEETCONFIG" in s.get("run", "")
            and "-ne 7" not in s.get("run", "")
        ),
        "installs silently with a fleet file",
    )
    self_test = step_index(
        lambda s: (
            "$env:INSTALL_DIR\\bdc-workstation.exe" in s.get("run", "")
            and "--self-test" in s.get("run", "")
        ),
        "self-tests the installed program",
    )
    uninstall = step_index(lambda s: "unins000.exe" in s.get("run", ""), "uninstalls")
    assert build < install < self_test < uninstall
    run = steps()[self_test]["run"]
    assert "ExitCode -ne 0" in run, "the self-test's exit code must fail the job"
    assert "fleet file $env:FLEET_FILE" in run, "the self-test must show the fleet file was read"
    for switch in ("/SUPPRESSMSGBOXES", "/NORESTART"):
        assert switch in steps()[install]["run"]
    assert "ExitCode -ne 0" in steps()[install]["run"]
    assert "ExitCode -ne 7" in "".join(s.get("run", "") for s in steps())


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _strings(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _strings(v, f"{path}/{i}")]
    return [(path, str(node))]


def test_signing_secrets_reach_the_job_only_through_env() -> None:
    found: set[str] = set()
    for path, text in _strings(workflow()):
        for name in re.findall(r"secrets\.(\w+)", text):
            found.add(name)
            # In an `env:` mapping, as a whole ${{ }} expression: never pasted into a script,
            # an action's input or a file name, where it could leak or be injected.
            assert re.search(r"/env/\w+$", path), f"secrets.{name} used at {path}"
            assert re.fullmatch(r"\$\{\{\s*secrets\.\w+(\s*!=\s*'')?\s*\}\}", text), text
    assert found == SIGNING_SECRETS
    runs = "\n".join(s.get("run", "") for s in steps())
    assert "/p " not in runs, "no certificate password on a command line"
    assert "sign /sha1 $env:SIGN_THUMBPRINT" in runs
    assert "Remove-Item $pfx" in runs
    docs = DEPLOY.read_text(encoding="utf-8")
    for name in SIGNING_SECRETS:
        assert f"`{name}`" in docs


def test_the_workflow_checks_the_registration_the_iss_writes() -> None:
    env = job()["env"]
    assert env["PROG_ID"] == iss_defines()["ProgId"]
    runs = "\n".join(s.get("run", "") for s in steps())
    assert r"Software\BDC Workstation\Capabilities\URLAssociations" in runs
    assert "AreAccessRulesProtected" in runs


# --- installing the dependencies on Windows ---------------------------------------------------


def test_windows_dependencies_swap_the_linux_only_sqlcipher_wheel(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "packaging" / "windows"))
    try:
        import install_deps
    finally:
        sys.path.remove(str(ROOT / "packaging" / "windows"))
    reqs = install_deps.requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["package"]]
    assert len(reqs) == len(wanted)
    assert not any(r.startswith("sqlcipher3-binary") and ";" not in r for r in reqs)
    assert any(r.startswith("sqlcipher3") for r in reqs)
    assert any(r.startswith("pyinstaller") for r in reqs)
    # Once pyproject.toml carries platform markers itself, they are left to pip.
    marked = tmp_path / "pyproject.toml"
    marked.write_text(
        "[project]\ndependencies = [\"sqlcipher3-binary>=0.5; sys_platform == 'linux'\", "
        "\"sqlcipher3>=0.6; sys_platform == 'win32'\"]\n"
        '[project.optional-dependencies]\npackage = ["pyinstaller>=6.10"]\n'
    )
    assert install_deps.requirements(marked) == [
        "sqlcipher3-binary>=0.5; sys_platform == 'linux'",
        "sqlcipher3>=0.6; sys_platform == 'win32'",
        "pyinstaller>=6.10",
    ]


# --- the docs IT follows ----------------------------------------------------------------------


def test_deploy_doc_gives_it_the_windows_commands() -> None:
    docs = DEPLOY.read_text(encoding="utf-8")
    for needed in (
        "/VERYSILENT /SUPPRESSMSGBOXES /NORESTART",
        'unins000.exe" /VERYSILENT',
        "/FLEETCONFIG=",
        "/LOG=",
        "Set a default associations configuration file",
        "Dism /Online /Export-DefaultAppAssociations",
        "Dism /Online /Import-DefaultAppAssociations",
        "Intune",
        "startup script",
        "Preferences",
        "--self-test",
        "x-scheme-handler/tel",
    ):
        assert needed in docs, needed
    assert re.search(r"\| *7 *\|", docs), "exit code 7 (bad fleet file) documented"
    # docs/deploy.md names the bundle size and cold start of the built program.
    assert re.search(r"\d+ MB", docs)
    assert re.search(r"cold start.*\d(\.\d+)? s", docs, re.I | re.S)


# --- compiling and running it (opt-in: Wine, Xvfb and Inno Setup) -------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not os.environ.get("BDC_ISCC") or not shutil.which("wine") or not shutil.which("xvfb-run"),
    reason="BDC_ISCC (Inno Setup's ISCC.exe), wine and xvfb-run are needed",
)
def test_the_installer_compiles_and_installs_under_wine() -> None:
    result = subprocess.run(
        ["xvfb-run", "-a", str(ROOT / "packaging" / "windows" / "check-installer-wine.sh")],
        env={**os.environ, "ISCC": os.environ["BDC_ISCC"], "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "installer checks passed" in result.stdout
