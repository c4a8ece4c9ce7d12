"""One behavioural suite for every engine: each operator of SPEC §2 counted by the engine and by a
plain-Python oracle over the same rows, which must agree — and agree across engines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from audience.compile.conditions import segment_ids
from audience.definitions.segment import Segment
from audience.errors import EngineError
from audience.workspace import Workspace

Row = dict[str, Any]
TODAY = date(2026, 11, 23)  # conftest.NOW's UTC date


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _is(value: Any, predicate: Callable[[Any], bool]) -> bool:
    """A condition on NULL is false."""
    return value is not None and bool(predicate(value))


# Each case: a condition tree, and what it means for one profile row (and that customer's orders).
CASES: dict[str, tuple[dict[str, Any], Callable[[Row, list[Row]], bool]]] = {
    "number >": (
        {"attribute": "lifetime_revenue", "op": ">", "value": 500},
        lambda r, o: _is(r["lifetime_revenue"], lambda v: v > 500),
    ),
    "number =": (
        {"attribute": "lifetime_order_count", "op": "=", "value": 3},
        lambda r, o: r["lifetime_order_count"] == 3,
    ),
    "number !=": (
        {"attribute": "rfm_recency", "op": "!=", "value": 5},
        lambda r, o: _is(r["rfm_recency"], lambda v: v != 5),
    ),
    "number <": (
        {"attribute": "lifetime_revenue", "op": "<", "value": 120.5},
        lambda r, o: _is(r["lifetime_revenue"], lambda v: v < Decimal("120.5")),
    ),
    "number <=": (
        {"attribute": "lifetime_order_count", "op": "<=", "value": 2},
        lambda r, o: _is(r["lifetime_order_count"], lambda v: v <= 2),
    ),
    "number >=": (
        {"attribute": "rfm_monetary", "op": ">=", "value": 8},
        lambda r, o: _is(r["rfm_monetary"], lambda v: v >= 8),
    ),
    "number between": (
        {"attribute": "lifetime_revenue", "op": "between", "value": [100, 500]},
        lambda r, o: _is(r["lifetime_revenue"], lambda v: 100 <= v <= 500),
    ),
    "number not_between": (
        {"attribute": "lifetime_revenue", "op": "not_between", "value": [100, 500]},
        lambda r, o: _is(r["lifetime_revenue"], lambda v: not 100 <= v <= 500),
    ),
    "number in": (
        {"attribute": "lifetime_order_count", "op": "in", "value": [1, 2, 3]},
        lambda r, o: r["lifetime_order_count"] in (1, 2, 3),
    ),
    "number not_in": (
        {"attribute": "rfm_frequency", "op": "not_in", "value": [1, 10]},
        lambda r, o: _is(r["rfm_frequency"], lambda v: v not in (1, 10)),
    ),
    "string =": (
        {"attribute": "state", "op": "=", "value": "CA"},
        lambda r, o: r["state"] == "CA",
    ),
    "string !=": (
        {"attribute": "loyalty_tier", "op": "!=", "value": "none"},
        lambda r, o: _is(r["loyalty_tier"], lambda v: v != "none"),
    ),
    "string contains": (
        {"attribute": "surname", "op": "contains", "value": "son"},
        lambda r, o: _is(r["surname"], lambda v: "son" in v),
    ),
    "string not_contains": (
        {"attribute": "email", "op": "not_contains", "value": "gmail"},
        lambda r, o: _is(r["email"], lambda v: "gmail" not in v),
    ),
    "string starts_with": (
        {"attribute": "given_name", "op": "starts_with", "value": "Ma"},
        lambda r, o: _is(r["given_name"], lambda v: v.startswith("Ma")),
    ),
    "string ends_with": (
        {"attribute": "email", "op": "ends_with", "value": ".com"},
        lambda r, o: _is(r["email"], lambda v: v.endswith(".com")),
    ),
    "string is_empty": (
        {"attribute": "address2", "op": "is_empty"},
        lambda r, o: r["address2"] is None or r["address2"].strip() == "",
    ),
    "string is_not_empty": (
        {"attribute": "address2", "op": "is_not_empty"},
        lambda r, o: _is(r["address2"], lambda v: v.strip() != ""),
    ),
    "string in": (
        {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
        lambda r, o: r["loyalty_tier"] in ("gold", "platinum"),
    ),
    "string not_in": (
        {"attribute": "state", "op": "not_in", "value": ["CA", "NY", "TX"]},
        lambda r, o: _is(r["state"], lambda v: v not in ("CA", "NY", "TX")),
    ),
    "boolean is_true": (
        {"attribute": "email_opt_out", "op": "is_true"},
        lambda r, o: r["email_opt_out"] is True,
    ),
    "boolean is_false": (
        {"attribute": "sms_opt_out", "op": "is_false"},
        lambda r, o: r["sms_opt_out"] is False,
    ),
    "date before": (
        {"attribute": "birthdate", "op": "before", "value": "1970-01-01"},
        lambda r, o: _is(r["birthdate"], lambda v: v < _d("1970-01-01")),
    ),
    "date after": (
        {"attribute": "birthdate", "op": "after", "value": "1990-06-15"},
        lambda r, o: _is(r["birthdate"], lambda v: v > _d("1990-06-15")),
    ),
    "date on_or_before": (
        {"attribute": "first_order_date", "op": "on_or_before", "value": "2024-06-30"},
        lambda r, o: _is(r["first_order_date"], lambda v: v <= _d("2024-06-30")),
    ),
    "date on_or_after": (
        {"attribute": "last_order_date", "op": "on_or_after", "value": "2026-10-01"},
        lambda r, o: _is(r["last_order_date"], lambda v: v >= _d("2026-10-01")),
    ),
    "date between": (
        {"attribute": "last_order_date", "op": "between", "value": ["2026-01-01", "2026-03-31"]},
        lambda r, o: _is(r["last_order_date"], lambda v: _d("2026-01-01") <= v <= _d("2026-03-31")),
    ),
    "date not_between": (
        {
            "attribute": "last_order_date",
            "op": "not_between",
            "value": ["2026-01-01", "2026-03-31"],
        },
        lambda r, o: _is(
            r["last_order_date"], lambda v: not _d("2026-01-01") <= v <= _d("2026-03-31")
        ),
    ),
    "date within_last days": (
        {"attribute": "last_order_date", "op": "within_last", "value": 90, "unit": "days"},
        lambda r, o: _is(r["last_order_date"], lambda v: v >= _d("2026-08-25")),
    ),
    "date within_last weeks": (
        {"attribute": "last_order_date", "op": "within_last", "value": 6, "unit": "weeks"},
        lambda r, o: _is(r["last_order_date"], lambda v: v >= _d("2026-10-12")),
    ),
    "date within_last months": (
        {"attribute": "last_order_date", "op": "within_last", "value": 6, "unit": "months"},
        lambda r, o: _is(r["last_order_date"], lambda v: v >= _d("2026-05-23")),
    ),
    "date more_than_ago years": (
        {"attribute": "first_order_date", "op": "more_than_ago", "value": 2, "unit": "years"},
        lambda r, o: _is(r["first_order_date"], lambda v: v < _d("2024-11-23")),
    ),
    "date more_than_ago days": (
        {"attribute": "last_order_date", "op": "more_than_ago", "value": 180},
        lambda r, o: _is(r["last_order_date"], lambda v: v < _d("2026-05-27")),
    ),
    "date today": (
        {"attribute": "last_order_date", "op": "today"},
        lambda r, o: r["last_order_date"] == TODAY,
    ),
    "date yesterday": (
        {"attribute": "last_order_date", "op": "yesterday"},
        lambda r, o: r["last_order_date"] == _d("2026-11-22"),
    ),
    "date =": (
        {"attribute": "last_order_date", "op": "=", "value": "2026-11-01"},
        lambda r, o: r["last_order_date"] == _d("2026-11-01"),
    ),
    "date !=": (
        {"attribute": "last_order_date", "op": "!=", "value": "2026-11-01"},
        lambda r, o: _is(r["last_order_date"], lambda v: v != _d("2026-11-01")),
    ),
    "timestamp within_last": (
        {"attribute": "created_at", "op": "within_last", "value": 1, "unit": "years"},
        lambda r, o: _is(r["created_at"], lambda v: v >= _ts("2025-11-23 00:00:00")),
    ),
    "timestamp on_or_before": (
        {"attribute": "created_at", "op": "on_or_before", "value": "2023-12-31"},
        lambda r, o: _is(r["created_at"], lambda v: v < _ts("2024-01-01 00:00:00")),
    ),
    "timestamp between": (
        {"attribute": "created_at", "op": "between", "value": ["2024-01-01", "2024-12-31"]},
        lambda r, o: _is(
            r["created_at"],
            lambda v: _ts("2024-01-01 00:00:00") <= v < _ts("2025-01-01 00:00:00"),
        ),
    ),
    "is_null": (
        {"attribute": "rfm_recency", "op": "is_null"},
        lambda r, o: r["rfm_recency"] is None,
    ),
    "is_not_null": (
        {"attribute": "phone", "op": "is_not_null"},
        lambda r, o: r["phone"] is not None,
    ),
    "all / any / not": (
        {
            "all": [
                {"attribute": "lifetime_revenue", "op": ">", "value": 200},
                {
                    "any": [
                        {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                        {"attribute": "state", "op": "=", "value": "WA"},
                    ]
                },
                {"not": {"attribute": "email_opt_out", "op": "is_true"}},
            ]
        },
        lambda r, o: (
            _is(r["lifetime_revenue"], lambda v: v > 200)
            and (r["loyalty_tier"] in ("gold", "platinum") or r["state"] == "WA")
            and r["email_opt_out"] is not True
        ),
    ),
    "purchased orders in category and window": (
        {
            "purchased": {
                "where": {"attribute": "product_category", "op": "=", "value": "Shoes"},
                "within_last": {"value": 365, "unit": "days"},
                "orders": {"op": ">=", "value": 2},
            }
        },
        lambda r, o: (
            len(
                {
                    x["order_id"]
                    for x in o
                    if x["product_category"] == "Shoes" and _since(x, "2025-11-23")
                }
            )
            >= 2
        ),
    ),
    "purchased revenue": (
        {
            "purchased": {
                "within_last": {"value": 1, "unit": "years"},
                "revenue": {"op": ">", "value": 500},
            }
        },
        lambda r, o: sum(x["order_revenue"] for x in o if _since(x, "2025-11-23")) > 500,
    ),
    "has not purchased": (
        {
            "purchased": {
                "within_last": {"value": 180, "unit": "days"},
                "orders": {"op": "=", "value": 0},
            }
        },
        lambda r, o: not any(_since(x, "2026-05-27") for x in o),
    ),
    "purchased between, nested where": (
        {
            "purchased": {
                "where": {
                    "all": [
                        {"attribute": "channel", "op": "=", "value": "online"},
                        {"attribute": "order_revenue", "op": ">=", "value": 50},
                    ]
                },
                "orders": {"op": "between", "value": [1, 3]},
            }
        },
        lambda r, o: (
            1
            <= len(
                {x["order_id"] for x in o if x["channel"] == "online" and x["order_revenue"] >= 50}
            )
            <= 3
        ),
    ),
}


def _since(order: Row, day: str) -> bool:
    return bool(order["order_datetime"] >= _ts(f"{day} 00:00:00"))


@pytest.fixture(scope="module")
def oracle_rows(sample_workspaces: dict[str, Workspace]) -> tuple[list[Row], dict[str, list[Row]]]:
    """Profiles, and each customer's valid orders (returns and cancellations excluded)."""
    engine = sample_workspaces["duckdb"].engine
    profiles = engine.rows(exp.select("*").from_("customer_360"))
    orders: dict[str, list[Row]] = defaultdict(list)
    for order in engine.rows(exp.select("*").from_("unified_transactions")):
        if not order["is_return"] and not order["is_cancellation"]:
            orders[order["amperity_id"]].append(order)
    return profiles, orders


def count(ws: Workspace, segment: Segment, segments: dict[str, Segment] | None = None) -> int:
    """How many customers the engine puts in the segment."""
    members = segment_ids(segment, ws.compile_context(segments=segments or {}))
    query = exp.select(exp.Count(this=exp.Star())).from_(exp.alias_(members.subquery(), "s"))
    return int(next(iter(ws.engine.rows(query)[0].values())))


@pytest.mark.parametrize("case", list(CASES))
def test_operator_matches_oracle(
    case: str,
    sample_workspace: Workspace,
    oracle_rows: tuple[list[Row], dict[str, list[Row]]],
) -> None:
    condition, meaning = CASES[case]
    profiles, orders = oracle_rows
    expected = sum(1 for r in profiles if meaning(r, orders.get(r["amperity_id"], [])))
    segment = Segment(name=case, where=condition)  # type: ignore[arg-type]
    assert count(sample_workspace, segment) == expected
    if case not in {"date today", "date yesterday", "date =", "number in"}:
        # the sample must make each case meaningful: some customers in, some out
        assert 0 < expected < len(profiles), case


def test_exclude_removes_only_where_true(
    sample_workspace: Workspace, oracle_rows: tuple[list[Row], dict[str, list[Row]]]
) -> None:
    """A NULL opt-out does not exclude (SPEC §2)."""
    profiles, _ = oracle_rows
    segment = Segment.model_validate(
        {
            "name": "gold, minus opted out",
            "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
            "exclude": {"attribute": "email_opt_out", "op": "is_true"},
        }
    )
    expected = sum(
        1 for r in profiles if r["loyalty_tier"] == "gold" and r["email_opt_out"] is not True
    )
    assert any(r["email_opt_out"] is None and r["loyalty_tier"] == "gold" for r in profiles)
    assert count(sample_workspace, segment) == expected


def test_in_segment_and_sql_segments(
    sample_workspace: Workspace, oracle_rows: tuple[list[Row], dict[str, list[Row]]]
) -> None:
    profiles, _ = oracle_rows
    loyal = Segment.model_validate(
        {"name": "Loyal", "where": {"attribute": "loyalty_tier", "op": "in", "value": ["gold"]}}
    )
    californians = Segment.model_validate(
        {"name": "Californians", "sql": "select amperity_id from customer_360 where state = 'CA'"}
    )
    either = Segment.model_validate(
        {
            "name": "Either",
            "where": {"any": [{"in_segment": "Loyal"}, {"in_segment": "Californians"}]},
        }
    )
    segments = {s.name: s for s in (loyal, californians, either)}
    expected = sum(1 for r in profiles if r["loyalty_tier"] == "gold" or r["state"] == "CA")
    assert count(sample_workspace, either, segments) == expected
    assert count(sample_workspace, californians, segments) == sum(
        1 for r in profiles if r["state"] == "CA"
    )


def test_engines_agree_on_every_case(sample_workspaces: dict[str, Workspace]) -> None:
    counts = {
        engine: [count(ws, Segment(name=c, where=CASES[c][0])) for c in CASES]  # type: ignore[arg-type]
        for engine, ws in sample_workspaces.items()
    }
    assert counts["duckdb"] == counts["postgres"] == counts["spark"]


def test_duckdb_memory_limit_is_applied(tmp_path: Path) -> None:
    from audience.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(tmp_path / "limited.duckdb", memory_limit="256MB")
    query = exp.select(exp.func("current_setting", exp.Literal.string("memory_limit")))
    (setting,) = engine.rows(query)[0].values()
    assert setting == "244.1 MiB"  # 256 MB, as DuckDB spells it
    engine.close()


def test_duckdb_draws_no_progress_bar_on_standard_output(tmp_path: Path) -> None:
    """DuckDB's own bar, drawn on stdout for queries over two seconds, would corrupt --json."""
    from audience.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(tmp_path / "quiet.duckdb")
    query = exp.select(exp.func("current_setting", exp.Literal.string("enable_progress_bar")))
    assert list(engine.rows(query)[0].values()) == [False]
    engine.close()


def test_postgres_streams_every_batch_with_one_schema(
    sample_workspaces: dict[str, Workspace],
) -> None:
    """Decimals of different widths, all-NULL batches and empty results keep the column types."""
    engine = sample_workspaces["postgres"].engine
    query = exp.select("lifetime_revenue", "rfm_recency", "created_at", "email_opt_out").from_(
        "customer_360"
    )
    reader = engine.stream(query.order_by("lifetime_revenue"), batch_rows=500)
    batches = list(reader)
    assert len(batches) > 2
    assert all(b.schema == reader.schema for b in batches)
    assert str(reader.schema.field("lifetime_revenue").type).startswith("decimal128(")
    empty = engine.stream(query.where(exp.false()))
    assert empty.schema == reader.schema and sum(b.num_rows for b in empty) == 0


def test_as_of_an_earlier_day_later_orders_and_dates_are_not_in_the_past(
    sample_workspace: Workspace, oracle_rows: tuple[list[Row], dict[str, list[Row]]]
) -> None:
    """Evaluated as of 60 days ago (a simulated --now), "within the last 30 days" ends that day:
    orders and last-order dates after it do not count, as they had not happened."""
    profiles, orders = oracle_rows
    earlier = datetime(2026, 9, 24, 12, tzinfo=UTC)  # NOW (2026-11-23) minus 60 days
    start, end = _ts("2026-08-25 00:00:00"), _ts("2026-09-25 00:00:00")

    def counted(where: dict[str, Any]) -> int:
        segment = Segment(name="as of", where=where)  # type: ignore[arg-type]
        members = segment_ids(segment, sample_workspace.compile_context(now=earlier))
        query = exp.select(exp.Count(this=exp.Star())).from_(exp.alias_(members.subquery(), "s"))
        return int(next(iter(sample_workspace.engine.rows(query)[0].values())))

    bought = {
        "purchased": {
            "within_last": {"value": 30, "unit": "days"},
            "orders": {"op": ">=", "value": 1},
        }
    }
    expected = sum(
        1
        for r in profiles
        if any(start <= x["order_datetime"] < end for x in orders.get(r["amperity_id"], []))
    )
    later = sum(
        1
        for r in profiles
        if any(x["order_datetime"] >= end for x in orders.get(r["amperity_id"], []))
    )
    assert later > 0 and counted(bought) == expected
    never = {"purchased": {"orders": {"op": "=", "value": 0}}}
    assert counted(never) == sum(
        1
        for r in profiles
        if not any(x["order_datetime"] < end for x in orders.get(r["amperity_id"], []))
    )
    recent = {"attribute": "last_order_date", "op": "within_last", "value": 30, "unit": "days"}
    assert counted(recent) == sum(
        1
        for r in profiles
        if r["last_order_date"] is not None and start.date() <= r["last_order_date"] < end.date()
    )


def _failing_on_the_last_id(engine: Any) -> tuple[exp.Expr, str]:
    """A query whose last row (of many) casts a customer id to an integer, and that id."""
    greatest = exp.alias_(exp.func("max", exp.column("amperity_id")), "id")
    last = engine.rows(exp.select(greatest).from_("customer_360"))[0]["id"]
    query = exp.maybe_parse(
        f"select cast(case when amperity_id = '{last}' then amperity_id else '1' end as int) "
        "as n from customer_360 order by amperity_id",
        dialect=engine.dialect,
    )
    return query, last


def test_a_value_that_will_not_convert_is_an_engine_error_that_does_not_quote_it(
    sample_workspace: Workspace,
) -> None:
    """The message names the type, never the customer's value."""
    query, last = _failing_on_the_last_id(sample_workspace.engine)
    with pytest.raises(EngineError) as failed:
        sample_workspace.engine.rows(query)
    assert last not in str(failed.value)
    assert "'…'" in str(failed.value) or '"…"' in str(failed.value)


def test_postgres_failing_part_way_through_a_stream_is_an_engine_error(
    sample_workspaces: dict[str, Workspace],
) -> None:
    """A server-side cursor computes rows as they are fetched: the error comes batches in."""
    engine = sample_workspaces["postgres"].engine
    query, last = _failing_on_the_last_id(engine)
    reader = engine.stream(query, batch_rows=100)
    with pytest.raises(EngineError, match="invalid input syntax") as failed:
        reader.read_all()
    assert last not in str(failed.value)


def test_tables_loaded_into_postgresql_have_their_statistics(
    sample_workspaces: dict[str, Workspace],
) -> None:
    """The sample's tables are analyzed as they are loaded: where autovacuum is off (or slow)
    PostgreSQL would otherwise plan as if each held a row or two."""
    ws = sample_workspaces["postgres"]
    tables = [ws.settings.tables.profile, ws.settings.tables.source, ws.settings.tables.events]
    rows = ws.engine.rows(
        exp.select("relname", "reltuples")
        .from_("pg_class")
        .where(exp.column("relname").isin(*tables))
        .where("relnamespace = current_schema()::regnamespace")
    )
    assert len(rows) == 3 and all(row["reltuples"] > 0 for row in rows), rows
