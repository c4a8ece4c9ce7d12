"""Values keep the type they were written with: a number, boolean or date is never turned into
text for a text column; the error says how to quote it, as the file spelled it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from audience.compile.catalog import Catalog
from audience.compile.conditions import CompileContext, segment_ids
from audience.definitions.loader import load_text
from audience.definitions.segment import Segment
from audience.errors import InvalidValue, ValueTypeMismatch
from audience.settings import TableSettings
from audience.workspace import Workspace

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
CATALOG = Catalog(
    {
        "customer_360": {"amperity_id": "string", "postal": "string", "rfm_recency": "number"},
        "unified_transactions": {
            "amperity_id": "string",
            "order_id": "string",
            "order_datetime": "timestamp",
            "brand": "string",
        },
    }
)
CTX = CompileContext(CATALOG, TableSettings(), NOW)


def compile_where(where: dict[str, Any]) -> str:
    segment = Segment.model_validate({"name": "s", "where": where})
    return segment_ids(segment, CTX).sql("duckdb")


@pytest.mark.parametrize("op", ["=", "!=", "contains", "not_contains", "starts_with", "ends_with"])
@pytest.mark.parametrize(
    ("value", "what"),
    [(2130, "a number"), (21.5, "a number"), (True, "a boolean"), (date(2026, 1, 2), "a date")],
)
def test_non_text_value_for_a_text_column_is_refused(op: str, value: Any, what: str) -> None:
    with pytest.raises(ValueTypeMismatch, match=f"is {what} but postal is text") as raised:
        compile_where({"all": [{"attribute": "postal", "op": op, "value": value}]})
    assert raised.value.field == "where.all.0.value"
    assert "write it quoted: value: " in str(raised.value)


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_non_text_list_item_is_refused_with_its_index(op: str) -> None:
    with pytest.raises(ValueTypeMismatch) as raised:
        compile_where({"attribute": "postal", "op": op, "value": ["02130", 2131]})
    assert raised.value.field == "where.value.1"
    assert str(raised.value).endswith('write it quoted: "2131"')


def test_inside_purchased_too() -> None:
    where = {"purchased": {"where": {"attribute": "brand", "op": "=", "value": 7}}}
    with pytest.raises(ValueTypeMismatch, match="brand is text"):
        compile_where(where)


def test_quoted_text_and_numbers_for_number_columns_still_compile() -> None:
    sql = compile_where(
        {
            "all": [
                {"attribute": "postal", "op": "in", "value": ["02130", "0o17"]},
                {"attribute": "rfm_recency", "op": "=", "value": 5},
            ]
        }
    )
    assert "IN ('02130', '0o17')" in sql and '"rfm_recency" = 5' in sql


@pytest.mark.parametrize(
    ("written", "read_as", "field", "advice"),
    [
        ("02130", "2130", "where.value", 'value: "02130"'),
        ("0o17", "15", "where.value", 'value: "0o17"'),
        ("1_000", "1000", "where.value", 'value: "1_000"'),
        ("0x1F", "31", "where.value", 'value: "0x1F"'),
        ('["1", 02130]', "2130", "where.value.1", '"02130"'),
        ("true", "true", "where.value", 'value: "true"'),
        ("2026-01-02", "2026-01-02", "where.value", 'value: "2026-01-02"'),
    ],
)
def test_advice_quotes_what_the_file_wrote(
    written: str, read_as: str, field: str, advice: str
) -> None:
    """YAML 1.2 reads `02130` as 2130 and `0o17` as 15: the advice quotes the file's text."""
    op = "in" if written.startswith("[") else "'='"
    text = f"kind: segment\nname: s\nwhere:\n  attribute: postal\n  op: {op}\n  value: {written}\n"
    (document,) = load_text(text, "f.yaml")
    with pytest.raises(ValueTypeMismatch) as raised:
        segment_ids(document.definition, CTX)  # type: ignore[arg-type]
    error = document.relocate(raised.value)
    assert str(error) == (
        f"f.yaml:6: {field}: value {read_as} is "
        f"{'a boolean' if written == 'true' else 'a date' if '-' in written else 'a number'} "
        f"but postal is text; write it quoted: {advice}"
    )


def test_apply_refuses_an_unquoted_postal_code(fresh_workspace: Workspace) -> None:
    text = "kind: segment\nname: Boston\nwhere: {attribute: postal, op: '=', value: 02130}\n"
    with pytest.raises(ValueTypeMismatch) as raised:
        fresh_workspace.apply_documents(load_text(text, "boston.yaml"))
    assert str(raised.value) == (
        "boston.yaml:3: where.value: value 2130 is a number but postal is text; "
        'write it quoted: value: "02130"'
    )
    assert isinstance(raised.value, InvalidValue | ValueError)
    assert fresh_workspace.store.definition("segment", "Boston") is None


def test_under_yaml_1_1_the_advice_still_quotes_what_was_written() -> None:
    """A `%YAML 1.1` file reads `02130` as octal 1112: the advice still says "02130"."""
    text = (
        "%YAML 1.1\n---\nkind: segment\nname: s\n"
        "where: {attribute: postal, op: '=', value: 02130}\n"
    )
    (document,) = load_text(text, "f.yaml")
    with pytest.raises(ValueTypeMismatch) as raised:
        segment_ids(document.definition, CTX)  # type: ignore[arg-type]
    assert str(document.relocate(raised.value)) == (
        "f.yaml:5: where.value: value 1112 is a number but postal is text; write it quoted: "
        'value: "02130"'
    )
