"""Input that used to reach "internal error" (or silently match nobody) is refused with one line
naming the field or the file: out-of-range dates, reversed ranges, unreadable files, a workspace
folder that cannot be made."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audience.compile.catalog import Catalog
from audience.compile.conditions import CompileContext, segment_ids
from audience.definitions.loader import load_paths, load_text, validate_data
from audience.definitions.segment import Segment
from audience.errors import (
    DefinitionError,
    InvalidValue,
    InvalidYAML,
    UnreadableFile,
    WorkspaceError,
)
from audience.settings import TableSettings
from audience.workspace import init_workspace

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
CATALOG = Catalog(
    {
        "customer_360": {
            "amperity_id": "string",
            "lifetime_revenue": "number",
            "last_order_date": "date",
            "created_at": "timestamp",
        },
        "unified_transactions": {
            "amperity_id": "string",
            "order_id": "string",
            "order_datetime": "timestamp",
            "order_revenue": "number",
        },
    }
)


def compile_where(where: dict[str, Any], now: datetime = NOW) -> str:
    segment = Segment.model_validate({"name": "s", "where": where})
    return segment_ids(segment, CompileContext(CATALOG, TableSettings(), now)).sql("duckdb")


@pytest.mark.parametrize("op", ["within_last", "more_than_ago"])
@pytest.mark.parametrize("unit", ["days", "weeks", "months", "years"])
@pytest.mark.parametrize("amount", [10**9, 10**30])
def test_relative_dates_beyond_the_calendar_are_refused(op: str, unit: str, amount: int) -> None:
    with pytest.raises(InvalidValue, match="out of range") as raised:
        compile_where({"attribute": "last_order_date", "op": op, "value": amount, "unit": unit})
    assert raised.value.field == "where.value"


def test_purchase_windows_beyond_the_calendar_are_refused() -> None:
    where = {"purchased": {"within_last": {"value": 10**9, "unit": "years"}}}
    with pytest.raises(InvalidValue, match="out of range") as raised:
        compile_where(where)
    assert raised.value.field == "where.purchased.within_last.value"


@pytest.mark.parametrize(
    ("op", "value", "field"),
    [
        ("on_or_before", "9999-12-31", "where.value"),
        ("=", "9999-12-31", "where.value"),
        ("between", ["2026-01-01", "9999-12-31"], "where.value.1"),
    ],
)
def test_the_last_day_a_date_can_hold_is_refused(op: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidValue, match="dates end at 9999-12-31") as raised:
        compile_where({"attribute": "created_at", "op": op, "value": value})
    assert raised.value.field == field


def test_today_at_the_end_of_the_calendar_is_refused() -> None:
    with pytest.raises(InvalidValue, match="dates end"):
        compile_where({"attribute": "created_at", "op": "today"}, now=datetime(9999, 12, 31))
    with pytest.raises(InvalidValue, match="out of range"):
        compile_where({"attribute": "created_at", "op": "yesterday"}, now=datetime(1, 1, 1))


@pytest.mark.parametrize("op", ["between", "not_between"])
def test_reversed_number_ranges_are_refused(op: str) -> None:
    with pytest.raises(InvalidValue, match=f"{op} needs from <= to, got 10 and 5") as raised:
        compile_where({"attribute": "lifetime_revenue", "op": op, "value": [10, 5]})
    assert raised.value.field == "where.value"


def test_equal_ends_are_a_range_of_one() -> None:
    assert "BETWEEN 5 AND 5" in compile_where(
        {"attribute": "lifetime_revenue", "op": "between", "value": [5, 5]}
    )


@pytest.mark.parametrize("op", ["between", "not_between"])
def test_reversed_date_ranges_name_the_operator(op: str) -> None:
    with pytest.raises(InvalidValue, match=f"{op} needs from <= to"):
        compile_where(
            {"attribute": "last_order_date", "op": op, "value": ["2026-02-01", "2026-01-01"]}
        )


def test_reversed_purchase_ranges_are_refused_where_written() -> None:
    text = (
        "kind: segment\nname: s\nwhere:\n  purchased:\n    orders: {op: between, value: [10, 5]}\n"
    )
    with pytest.raises(DefinitionError, match="between needs from <= to, got 10 and 5") as raised:
        load_text(text, "s.yaml")
    assert raised.value.where == "s.yaml:5"
    assert raised.value.field == "where.purchased.orders"


def test_a_binary_file_is_refused_naming_it(tmp_path: Path) -> None:
    image = tmp_path / "image.yaml"
    image.write_bytes(b"kind: segment\n\xff\xd8\xff\xe0 JFIF")
    with pytest.raises(UnreadableFile, match="not UTF-8 text") as raised:
        load_paths([image])
    assert raised.value.where == str(image)


def test_a_folder_named_like_yaml_is_not_read_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "real.yaml").write_text("kind: segment\nname: s\nsql: select 1\n")
    assert [d.definition.name for d in load_paths([tmp_path])] == ["s"]


def test_merged_keys_load(tmp_path: Path) -> None:
    """YAML merge keys (`<<: *base`) have no position of their own; they used to crash."""
    text = "kind: segment\nname: s\nwhere:\n  <<: {attribute: last_order_date, op: today}\n"
    (document,) = load_text(text)
    assert (
        document.definition
        == validate_data(
            {
                "kind": "segment",
                "name": "s",
                "where": {"attribute": "last_order_date", "op": "today"},
            }
        ).definition
    )


@pytest.mark.parametrize("under", ["a-file/workspace", "a-file"])
def test_init_where_no_folder_can_be_made(tmp_path: Path, under: str) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(WorkspaceError, match="cannot create the workspace in"):
        init_workspace(tmp_path / under)


@pytest.mark.parametrize(
    "value",
    [
        "!!int 0x",
        "!!float abc",
        "!!bool maybe",
        "!!set x",
        "2001-02-30",
        "2026-01-31 25:00:00",
        "9" * 5000,
    ],
)
def test_values_yaml_cannot_build_are_invalid_yaml(value: str) -> None:
    text = f"kind: segment\nname: s\nwhere: {{attribute: postal, op: '=', value: {value}}}\n"
    with pytest.raises(InvalidYAML, match="a value cannot be read") as raised:
        load_text(text, "s.yaml")
    assert raised.value.where == "s.yaml"


def test_a_redefined_anchor_loads_without_a_warning() -> None:
    text = "kind: segment\nname: &a s\nsql: &a select amperity_id from customer_360\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (document,) = load_text(text)
    assert document.definition.name == "s"


@pytest.mark.parametrize(
    ("value", "shown"), [([None], "null"), ({"a": 1}, "a mapping"), ([[1]], "a list in a list")]
)
def test_values_that_are_not_scalars_are_named(value: Any, shown: str) -> None:
    document = {
        "kind": "segment",
        "name": "s",
        "where": {"attribute": "postal", "op": "in", "value": value},
    }
    with pytest.raises(DefinitionError, match=f"a value is text, a number.*not {shown}$") as raised:
        validate_data(document)
    assert raised.value.field == "where.value"
