"""Filename templates: sandboxed, checked when saved, and always rendering one safe name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from audience.definitions import templates
from audience.definitions.destination import FileOptions
from audience.delivery import naming
from audience.delivery.naming import NameValues
from audience.errors import TemplateError

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _name(template: str, activation: str = "Spring", group: str = "Offer A", **kw: object) -> str:
    return naming.data_file_name(
        template,
        NameValues(activation_name=activation, group_name=group, now=NOW),
        destination_name="marketing-s3",
        run_id="run-1",
        file_number=int(str(kw.get("file_number", 1))),
        numbered=bool(kw.get("numbered", False)),
        suffix=".csv",
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__ }}", "attribute access"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("{{ now.year }}", "attribute access"),
        ("{{ group_name['x'] }}", "item access"),
        ("{{ range(3) }}", "a call is not allowed"),
        ("{{ lipsum() }}", "not allowed"),
        ("{{ customer_email }}", "unknown variable 'customer_email'"),
        ("{% for x in group_name %}{{ x }}{% endfor %}", "not allowed"),
        ("{% include 'x' %}", "not allowed"),
        ("{{ group_name | attr('x') }}", "filter 'attr' is not allowed"),
        ("{{ group_name", "invalid template"),
        ("exports/{{ group_name }}", "'/'"),
        ("..{{ group_name }}", "'..'"),
        ("a\\{{ group_name }}", "'\\\\\\\\'"),
        ("{{ now | format('%Y/%m') }}", "'/'"),
        ("tab\t{{ group_name }}", "control"),
        ("{{ now | format(1) }}", "cannot be rendered"),
        ("{{ '%0999999999d' | format(file_number) }}", "at most 2 digits"),
        ("{{ now | format('%-1000000Y') }}", "at most 2 digits"),
        ("", "empty"),
        ("{{ group_name }}" * 100, "longer than"),
    ],
)
def test_unsafe_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        templates.validate_template(template)


def test_template_errors_surface_as_definition_errors_on_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        FileOptions.model_validate({"filename": "{{ ''.__class__ }}"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("filename",)
    assert "attribute access" in error["msg"]


@pytest.mark.parametrize(
    "template",
    [
        templates.DEFAULT_TEMPLATE,
        "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y-%m-%d') }}",
        "{{ campaign_name | lower }}-{{ '%03d' | format(file_number) }}",
        "{{ destination_name }}_{{ run_id }}_{{ sub_audience_name | upper }}",
        "{{ activation_name }}{% if group_name %}_{{ group_name }}{% endif %}",
        "{{ activation_name ~ '-' ~ group_name | replace(' ', '') }}",
    ],
)
def test_good_templates_pass(template: str) -> None:
    templates.validate_template(template)


def test_rendering_the_default_template() -> None:
    assert _name(templates.DEFAULT_TEMPLATE) == "Spring_Offer_A_20261201.csv"


def test_the_activation_name_is_always_in_the_file_name() -> None:
    assert _name("{{ group_name }}_{{ now | format('%Y%m%d') }}") == "Spring_Offer_A_20261201.csv"
    assert _name("daily") == "Spring_daily.csv"


def test_parts_get_a_number_unless_the_template_places_it() -> None:
    assert _name(templates.DEFAULT_TEMPLATE, numbered=True, file_number=3).endswith("_3.csv")
    placed = "{{ activation_name }}_{{ file_number }}_x"
    assert _name(placed, numbered=True, file_number=3) == "Spring_3_x.csv"


@pytest.mark.parametrize(
    "activation",
    [
        "../../etc/passwd",
        "a/b\\c",
        "..",
        ".hidden",
        "-rf",
        "nul\x00bell\x07del\x7fesc\x1b",
        "line\nbreak\r",
        "zero\u200bwidth\u202eright-to-left",
        "x" * 300,
        "é" * 300,
        "🎉 Spring 🌸 Sale",
        "🎉🎉",
    ],
)
def test_values_are_made_safe(activation: str) -> None:
    name = _name(templates.DEFAULT_TEMPLATE, activation=activation, group="../g\\/")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert name.isprintable() and not name.startswith((".", "-"))
    assert len(name.encode()) <= naming.MAX_STEM_BYTES + len(".csv")
    assert name.endswith("_g_20261201.csv") or "-" in name  # long names end in a hash
    assert naming.safe_component(activation) in name


def test_long_names_differing_at_the_end_stay_different() -> None:
    first = _name("{{ activation_name }}", activation="x" * 250 + "a")
    second = _name("{{ activation_name }}", activation="x" * 250 + "b")
    assert first != second
    assert len(first.encode()) <= naming.MAX_STEM_BYTES + len(".csv")


def test_names_made_only_of_emoji_stay_apart() -> None:
    assert _name("{{ activation_name }}", "🎉") != _name("{{ activation_name }}", "🌸")


def test_spaces_and_punctuation_become_underscores_consistently() -> None:
    assert naming.safe_component("Spring  Churn: 50% off!") == "Spring_Churn_50_off"
    assert naming.safe_component("Café Été") == "Café_Été"


@pytest.mark.parametrize(
    ("file_format", "compression", "extension"),
    [
        ("csv", "none", ".csv"),
        ("csv", "gzip", ".csv.gz"),
        ("tsv", "gzip", ".tsv.gz"),
        ("psv", "none", ".psv"),
        ("parquet", "none", ".parquet"),
        ("json", "zip", ".zip"),
        ("ndjson", "tar", ".tar"),
        ("csv", "tgz", ".tar.gz"),
    ],
)
def test_extensions(file_format: str, compression: str, extension: str) -> None:
    assert naming.extension(file_format, compression) == extension


def test_an_activation_needs_a_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        NameValues(activation_name="  ", now=NOW)
