"""Filename templates do bounded work: short values out of every filter, short names, few and
shallow filter calls — refused when a destination is applied, and again when a file is named."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from audience.definitions import templates
from audience.definitions.loader import validate_data
from audience.delivery import naming
from audience.delivery.naming import NameValues
from audience.errors import TemplateError

BOMB = "{{ campaign_name" + " | replace('', 'xxxxxxxxxx')" * 8 + " }}"
"""243 characters that would render about 1.5 GB."""


def destination(filename: str) -> dict[str, object]:
    return {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": "/tmp/out"},
        "file": {"filename": filename},
    }


def test_nested_replace_bomb_is_refused_fast_naming_the_field() -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError, match="longer than 1000 characters") as raised:
        validate_data(destination(BOMB), "d.yaml")
    assert time.perf_counter() - started < 1
    assert raised.value.field == "file.filename"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ '%*d' | format(100000000, 1) }}", "never `\\*`"),
        ("{{ '%.999999999f' | format(1.5) }}", "at most 2 digits"),
        ("{{ '%(a)0999999999d' | format(a=1) }}", "at most 2 digits"),
        ("{{ " + "not " * 21 + "now }}", "nests more than 20"),
        ("{{ " + "(" * 240 + "now" + ")" * 240 + " }}", "nests more than 20|longer than"),
        ("{{ group_name" + " | lower" * 17 + " }}", "more than 16 filters"),
        (("{{ run_id | replace('', '" + "x" * 24 + "') }}") * 6, "renders more than 1000"),
    ],
)
def test_work_beyond_the_bounds_is_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        templates.validate_template(template)


def test_deep_nesting_is_a_template_error_not_a_recursion_error() -> None:
    deep = "{{ " + "(" * 200 + "now" + ")" * 200 + " }}"
    with pytest.raises(TemplateError):
        templates.validate_template(deep)


def test_the_bounds_hold_when_a_file_is_named() -> None:
    """A template that passed with sample values is refused when real values would blow it up:
    a campaign name long enough to make a filter's result too long, or shaped like a pattern."""
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def name(template: str, activation: str) -> str:
        templates.validate_template(template)
        return naming.data_file_name(
            template,
            NameValues(activation_name=activation, now=now),
            destination_name="out",
            run_id="run-1",
            file_number=1,
            numbered=False,
            suffix=".csv",
        )

    assert name("{{ campaign_name | replace('a', 'aaaaaaaa') }}", "Spa") == "Spaaaaaaaa.csv"
    with pytest.raises(TemplateError, match="longer than 1000"):
        name("{{ campaign_name | replace('a', 'aaaaaaaaaa') }}", "a" * 120)
    # naming makes '%' safe before rendering; render itself still refuses a huge pattern
    with pytest.raises(TemplateError, match="at most 2 digits"):
        templates.render("{{ campaign_name | format(1) }}", {"campaign_name": "%0999999999d"})
