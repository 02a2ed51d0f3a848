from datetime import time

import pytest

from app.domain.errors import ResourceError
from app.domain.rules_file import RulesDocument

TEXT = """\
id = "demo"
[window]
start = "08:00"
end = "25:00"

[[steps]]
channel = "call"

[[steps]]
channel = 7
"""


def test_wrong_type_names_file_line_and_field() -> None:
    doc = RulesDocument(TEXT, "resources/x.toml")
    with pytest.raises(ResourceError) as info:
        doc.get(doc.data["steps"][1], ("steps", 1, "channel"), str)
    assert info.value.source == "resources/x.toml"
    assert info.value.line == 10
    assert info.value.field == "steps[1].channel"
    assert str(info.value) == "resources/x.toml:10 [steps[1].channel]: must be str, got an integer"


def test_missing_field_points_at_its_table() -> None:
    doc = RulesDocument(TEXT, "x.toml")
    with pytest.raises(ResourceError, match="missing required field 'offset'") as info:
        doc.get(doc.data["steps"][0], ("steps", 0, "offset"), str)
    assert info.value.line == 6


def test_clock_times() -> None:
    doc = RulesDocument(TEXT, "x.toml")
    assert doc.clock_time(doc.data["window"], ("window", "start")) == time(8, 0)
    with pytest.raises(ResourceError, match="must be a time") as info:
        doc.clock_time(doc.data["window"], ("window", "end"))
    assert info.value.line == 4


def test_unknown_keys_are_refused_by_name() -> None:
    doc = RulesDocument(TEXT, "x.toml")
    with pytest.raises(ResourceError, match="unknown field 'end'"):
        doc.check_keys(doc.data["window"], ("window",), {"start"})


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ResourceError) as info:
        RulesDocument('id = "a"\nname = \n', "broken.toml")
    assert info.value.line == 2
    assert "not valid TOML" in str(info.value)
