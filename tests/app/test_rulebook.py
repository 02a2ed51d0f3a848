import pytest

from app.domain.cadence import parse_cadence_files
from app.domain.errors import ResourceError
from app.rulebook import check_cadence_references, list_resources, load_rulebook, read_resource


def test_every_shipped_rules_file_loads_and_validates() -> None:
    rules = load_rulebook()
    assert set(rules.cadences) == {"internet_new", "appointment_set", "contacted_not_ready"}
    assert len(rules.dispositions) >= 10
    assert rules.hours.time_zone
    assert rules.scripts
    assert "opt_out_confirmation" in rules.templates.ids


def test_a_cadence_naming_a_missing_template_is_refused_with_file_and_line() -> None:
    rules = load_rulebook()
    name = "cadences/internet_new.toml"
    text, source = read_resource(name)
    first_template = text.index('template = "') + len('template = "')
    end = text.index('"', first_template)
    broken = text[:first_template] + "no_such_template" + text[end:]
    line = broken[:first_template].count("\n") + 1
    files = [(broken, source)] + [
        read_resource(n) for n in list_resources("cadences", ".toml") if n != name
    ]
    cadences = parse_cadence_files(files)
    with pytest.raises(ResourceError) as info:
        check_cadence_references(files, cadences.values(), rules.templates, rules.scripts)
    assert info.value.source == "resources/cadences/internet_new.toml"
    assert info.value.line == line
    assert info.value.field.endswith(".template")
    assert "no_such_template" in str(info.value)


def test_a_text_step_must_use_a_text_template() -> None:
    rules = load_rulebook()
    email_template = next(
        t.id
        for t in (rules.templates.get(i) for i in rules.templates.ids)
        if t.channel.value == "email"
    )
    text = f"""
id = "tiny"
name = "Tiny"
[stop]
max_attempts = 3
max_days = 5
[[steps]]
id = "t1"
channel = "text"
offset = "5m"
template = "{email_template}"
"""
    files = [(text, "resources/cadences/tiny.toml")]
    cadences = parse_cadence_files(files)
    with pytest.raises(ResourceError, match="is not a text template") as info:
        check_cadence_references(files, cadences.values(), rules.templates, rules.scripts)
    assert info.value.line == 11
