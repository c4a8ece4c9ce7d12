"""The compiler without a database: golden SQL per dialect, and every kind of bad input."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audience.compile.catalog import Catalog
from audience.compile.conditions import CompileContext, segment_ids
from audience.definitions.loader import load_text
from audience.definitions.segment import Segment
from audience.errors import (
    CycleError,
    InvalidValue,
    NestingTooDeep,
    OperatorTypeMismatch,
    UnknownAttribute,
    UnknownReference,
)
from audience.settings import TableSettings

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
CATALOG = Catalog(
    {
        "customer_360": {
            "amperity_id": "string",
            "email": "string",
            "state": "string",
            "loyalty_tier": "string",
            "lifetime_revenue": "number",
            "lifetime_order_count": "number",
            "last_order_date": "date",
            "created_at": "timestamp",
            "email_opt_out": "boolean",
        },
        "unified_transactions": {
            "amperity_id": "string",
            "order_id": "string",
            "order_datetime": "timestamp",
            "order_revenue": "number",
            "product_category": "string",
            "is_return": "boolean",
            "is_cancellation": "boolean",
        },
    }
)
APPENDIX = Path(__file__).parents[1] / "fixtures" / "appendix_segments.yaml"


def context(*segments: Segment) -> CompileContext:
    return CompileContext(CATALOG, TableSettings(), NOW, {s.name: s for s in segments})


def segment(where: Any, **extra: Any) -> Segment:
    return Segment.model_validate({"name": "s", "where": where, **extra})


def appendix_segments() -> list[Segment]:
    return [d.definition for d in load_text(APPENDIX.read_text())]


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_golden_sql(dialect: str, index: int) -> None:
    segments = appendix_segments()
    sql = segment_ids(segments[index], context(*segments)).sql(dialect, pretty=True) + "\n"
    golden = GOLDEN / f"appendix_{index}.{dialect}.sql"
    if os.environ.get("AUDIENCE_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(sql)
    assert sql == golden.read_text()


def test_unknown_attribute_is_named() -> None:
    with pytest.raises(UnknownAttribute, match="'lifetime_revnue'") as raised:
        segment_ids(segment({"attribute": "lifetime_revnue", "op": ">", "value": 1}), context())
    assert raised.value.field == "where.attribute"


def test_injection_in_an_attribute_name_is_an_unknown_attribute() -> None:
    bad = segment({"all": [{"attribute": "email; drop table x", "op": "is_null"}]})
    with pytest.raises(UnknownAttribute, match="email; drop table x") as raised:
        segment_ids(bad, context())
    assert raised.value.field == "where.all.0.attribute"


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({"attribute": "lifetime_revenue", "op": "contains", "value": "x"}, "number column"),
        ({"attribute": "state", "op": ">", "value": 3}, "string column"),
        ({"attribute": "email_opt_out", "op": "=", "value": True}, "boolean column"),
        ({"attribute": "last_order_date", "op": "contains", "value": "2024"}, "date column"),
    ],
)
def test_operator_that_does_not_fit_the_type(condition: dict[str, Any], fragment: str) -> None:
    with pytest.raises(OperatorTypeMismatch, match=fragment) as raised:
        segment_ids(segment(condition), context())
    assert raised.value.field == "where.op"


@pytest.mark.parametrize(
    "condition",
    [
        {"attribute": "lifetime_revenue", "op": ">", "value": "500"},
        {"attribute": "lifetime_revenue", "op": "in", "value": [1, "two"]},
        {"attribute": "state", "op": "=", "value": True},
        {"attribute": "last_order_date", "op": "after", "value": "last tuesday"},
        {"attribute": "last_order_date", "op": "between", "value": ["2026-02-01", "2026-01-01"]},
    ],
)
def test_malformed_values_are_rejected(condition: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue) as raised:
        segment_ids(segment(condition), context())
    assert raised.value.field == "where.value"


def test_values_with_quotes_and_percent_are_literals() -> None:
    tricky = "O'Brien's 100% \"best\"; drop table x --"
    sql = segment_ids(
        segment({"attribute": "state", "op": "contains", "value": tricky}), context()
    ).sql("postgres")
    assert "'O''Brien''s 100% \"best\"; drop table x --'" in sql


def test_missing_segment_is_named() -> None:
    with pytest.raises(UnknownReference, match="'Ghosts'") as raised:
        segment_ids(segment({"any": [{"in_segment": "Ghosts"}]}), context())
    assert raised.value.field == "where.any.0.in_segment"


def test_cycle_of_in_segment_is_named() -> None:
    a = Segment.model_validate({"name": "A", "where": {"in_segment": "B"}})
    b = Segment.model_validate({"name": "B", "where": {"all": [{"in_segment": "C"}]}})
    c = Segment.model_validate({"name": "C", "where": {"in_segment": "A"}})
    with pytest.raises(CycleError, match="A → B → C → A"):
        segment_ids(a, context(a, b, c))


def test_sql_segment_must_be_one_select() -> None:
    for sql in ("drop table customer_360", "select 1; select 2", "select * from customer_360"):
        with pytest.raises(InvalidValue) as raised:
            segment_ids(Segment(name="q", sql=sql), context())
        assert raised.value.field == "sql"


def test_purchase_conditions_only_test_event_columns() -> None:
    bad = segment({"purchased": {"where": {"in_segment": "X"}}})
    with pytest.raises(InvalidValue, match="event table"):
        segment_ids(bad, context())
    with pytest.raises(UnknownAttribute, match="'loyalty_tier'"):
        segment_ids(
            segment(
                {"purchased": {"where": {"attribute": "loyalty_tier", "op": "=", "value": "x"}}}
            ),
            context(),
        )


def test_relative_dates_use_utc_day_starts() -> None:
    late_evening_in_la = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 18:00 on the 23rd in LA
    ctx = CompileContext(CATALOG, TableSettings(), late_evening_in_la, {})
    sql = segment_ids(
        segment({"attribute": "created_at", "op": "within_last", "value": 1, "unit": "months"}),
        ctx,
    ).sql("duckdb")
    assert "CAST('2026-10-24 00:00:00' AS TIMESTAMP)" in sql


def test_item_level_event_tables_count_distinct_orders() -> None:
    bought = segment({"purchased": {"orders": {"op": ">=", "value": 2}}})
    per_order = segment_ids(bought, context()).sql("duckdb")
    per_item = segment_ids(
        bought,
        CompileContext(CATALOG, TableSettings(events_one_row_per_order=False), NOW, {}),
    ).sql("duckdb")
    assert "COUNT(*) >= 2" in per_order
    assert 'COUNT(DISTINCT "order_id") >= 2' in per_item


def test_long_or_exploding_in_segment_chains_are_clear_errors() -> None:
    chain = [
        Segment.model_validate({"name": "s0", "where": {"attribute": "state", "op": "is_null"}})
    ]
    for i in range(1, 1000):
        chain.append(
            Segment.model_validate({"name": f"s{i}", "where": {"in_segment": f"s{i - 1}"}})
        )
    with pytest.raises(NestingTooDeep, match="more than 20 segments deep"):
        segment_ids(chain[-1], context(*chain))
    diamond = chain[:1]
    for i in range(1, 17):  # each refers twice to the one before: 2**16 uses if inlined
        twice = {"any": [{"in_segment": f"s{i - 1}"}, {"in_segment": f"s{i - 1}"}]}
        diamond.append(Segment.model_validate({"name": f"s{i}", "where": twice}))
    with pytest.raises(NestingTooDeep, match="200 uses"):
        segment_ids(diamond[-1], context(*diamond))
