"""Install the project and its `package` extra on the Windows build runner.

pyproject.toml asks for `sqlcipher3-binary`, which publishes Linux wheels only; on Windows the
same `sqlcipher3` module comes from the `sqlcipher3` distribution (win_amd64 wheels, SQLCipher
built in). This reads the dependency list from pyproject.toml (so it never drifts from it),
swaps that one requirement where it has no environment marker, and installs the rest unchanged.
Once pyproject.toml carries the platform markers itself, nothing is swapped.

    python packaging/windows/install_deps.py            # installs
    python packaging/windows/install_deps.py --print    # only prints the requirements
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRA = "package"
# Linux-only wheel -> the distribution that provides the same import on Windows.
WINDOWS_SWAPS = {"sqlcipher3-binary": "sqlcipher3>=0.6"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"][EXTRA]]
    out = []
    for requirement in wanted:
        swap = WINDOWS_SWAPS.get(_name(requirement))
        out.append(swap if swap and ";" not in requirement else requirement)
    return out


def main(argv: list[str]) -> int:
    reqs = requirements()
    if "--print" in argv:
        print("\n".join(reqs))
        return 0
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, *reqs], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
