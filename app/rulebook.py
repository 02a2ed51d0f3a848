"""Where the rules files live; reads them as text for the domain's parsers (the only I/O here)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def resources_root() -> Traversable:
    return resources.files("resources")


def read_resource(relative: str) -> tuple[str, str]:
    """(text, source name) of a file under resources/, e.g. "scoring.toml" or "cadences/x.toml"."""
    node = resources_root()
    for part in relative.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8"), f"resources/{relative}"


def list_resources(folder: str, suffix: str) -> list[str]:
    """Sorted relative names of the files in a resources/ sub-folder ending in `suffix`."""
    node = resources_root().joinpath(folder)
    return sorted(
        f"{folder}/{child.name}" for child in node.iterdir() if child.name.endswith(suffix)
    )
