"""Validated reading of the TOML rules files in resources/.

A broken file must name the file, the line and the field. tomllib gives no positions for values, so
`RulesDocument` maps each table header and key to its line by a light scan of the text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import time
from typing import Any, TypeVar

from app.domain.errors import ResourceError

T = TypeVar("T")
Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]+\"|'[^']+'|[A-Za-z0-9_\-.]+)\s*=")
_TOML_POS = re.compile(r"at line (\d+)")


def _split_dotted(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


class RulesDocument:
    """A parsed rules file that can say where each field is."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_POS.search(str(exc))
            line = int(match.group(1)) if match else None
            raise ResourceError(source, f"not valid TOML: {exc}", line=line) from exc
        self._lines = self._index(text)

    @staticmethod
    def _index(text: str) -> dict[Path, int]:
        lines: dict[Path, int] = {}
        array_counts: dict[tuple[str, ...], int] = {}
        current: Path = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                names = tuple(_split_dotted(header.group(2)))
                if header.group(1) == "[[":
                    index = array_counts.get(names, 0)
                    array_counts[names] = index + 1
                    current = (*names, index)
                else:
                    current = names
                lines.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                lines.setdefault((*current, *_split_dotted(key.group(1))), number)
        return lines

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, else of its nearest enclosing table that was indexed."""
        probe = tuple(path)
        while probe:
            if probe in self._lines:
                return self._lines[probe]
            probe = probe[:-1]
        return None

    def error(self, path: Path, message: str) -> ResourceError:
        return ResourceError(self.source, message, line=self.line_of(path), field=_path_text(path))

    # Typed accessors: each names the field and its line when the value is missing or wrong.

    def table(self, path: Path, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a table, got {_type_name(value)}")
        return value

    def array(self, path: Path, value: Any) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self.error(path, f"must be an array, got {_type_name(value)}")
        return value

    def get(
        self,
        container: Mapping[str, Any],
        path: Path,
        kind: type[T],
        *,
        default: T | None = None,
        required: bool = True,
    ) -> T:
        key = path[-1]
        assert isinstance(key, str)
        if key not in container:
            if default is not None or not required:
                return default  # type: ignore[return-value]
            raise self.error(path[:-1], f"missing required field '{key}'")
        value = container[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(path, f"must be {kind.__name__}, got {_type_name(value)}")
        return value

    def clock_time(self, container: Mapping[str, Any], path: Path) -> time:
        """A local wall-clock time written as "HH:MM" (or a TOML local time)."""
        key = path[-1]
        assert isinstance(key, str)
        if key not in container:
            raise self.error(path[:-1], f"missing required field '{key}'")
        return parse_clock_time(container[key], lambda msg: self.error(path, msg))

    def check_keys(self, container: Mapping[str, Any], path: Path, allowed: set[str]) -> None:
        """Unknown keys are typos until proven otherwise: refuse them by name."""
        for key in container:
            if key not in allowed:
                raise self.error(
                    (*path, key), f"unknown field '{key}' (allowed: {', '.join(sorted(allowed))})"
                )


def parse_clock_time(value: Any, fail: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if match:
            hour, minute = int(match.group(1)), int(match.group(2))
            if hour == 24 and minute == 0:
                return time.max
            if 0 <= hour < 24 and 0 <= minute < 60:
                return time(hour, minute)
    raise fail(f'must be a time like "08:00", got {value!r}')


def _path_text(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
