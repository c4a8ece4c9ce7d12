"""The order summary insights read never answers stale: orders loaded since it was built are
seen at once, on every engine; an edit in place shows at the next refresh (the worker's daily
one), and insights say when the summary was built."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from audience.activation.insights import compute_insights
from audience.definitions.segment import Segment
from audience.scheduling.worker import Worker
from audience.workspace import Workspace
from realservices import ENGINES, NOW, SAMPLE_PROFILES, SAMPLE_SEED, make_workspace

SEGMENT = Segment.model_validate(
    {"name": "Gold", "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"}}
)
ORDER = """
insert into unified_transactions
    (amperity_id, order_id, order_datetime, order_revenue, is_return, is_cancellation)
values (%s, 'order-summary-test', timestamp '2026-11-23 09:00:00', 1234.50, false, false)
"""


@pytest.fixture(params=ENGINES)
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, own_postgres_schema: str
) -> Iterator[Workspace]:
    """A sample workspace of the test's own on each engine (the test changes its orders)."""
    if request.param == "spark":  # the sample's Parquet folders, copied: faster than writing
        shutil.copytree(request.getfixturevalue("sample_warehouse"), tmp_path / "spark-warehouse")
    with make_workspace(tmp_path, request.param, own_postgres_schema) as ws:
        if request.param != "spark":
            ws.load_sample(profiles=SAMPLE_PROFILES, seed=SAMPLE_SEED)
        yield ws


def sql(ws: Workspace, statement: str, *values: Any) -> list[tuple[Any, ...]]:
    if ws.settings.engine.type == "spark":  # no connection: the engine rewrites UPDATEs
        for value in values:
            statement = statement.replace("%s", exp.convert(value).sql("spark"), 1)
        parsed = exp.maybe_parse(statement, dialect="spark")
        if isinstance(parsed, exp.Query):
            return [tuple(row.values()) for row in ws.engine.rows(parsed)]
        ws.engine.execute(parsed)
        return []
    connection = getattr(ws.engine, "connection")  # noqa: B009 - both engines expose one
    placeholder = "%s" if ws.settings.engine.type == "postgres" else "?"
    cursor = connection.execute(statement.replace("%s", placeholder), list(values))
    return cursor.fetchall() if cursor.description else []


def gold_member(ws: Workspace) -> str:
    ((customer,),) = sql(
        ws, "select amperity_id from customer_360 where loyalty_tier = 'gold' limit 1"
    )
    return str(customer)


def test_orders_loaded_after_the_summary_are_counted_at_once(workspace: Workspace) -> None:
    before = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    sql(workspace, ORDER, gold_member(workspace))
    after = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    assert after.revenue_1y == pytest.approx(before.revenue_1y + 1234.50, abs=0.01)
    assert after.orders_per_customer > before.orders_per_customer
    assert after.orders_as_of == NOW.isoformat(timespec="seconds")


def test_an_edit_in_place_shows_at_the_next_refresh(workspace: Workspace) -> None:
    member = gold_member(workspace)
    sql(workspace, ORDER, member)
    first = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    # A change that keeps the event table's rows and latest order time: not seen by the
    # fingerprint, so the figures stay those of the summary's as-of time ...
    sql(workspace, "update unified_transactions set order_revenue = 34.50 where order_id = %s",
        "order-summary-test")  # fmt: skip
    unchanged = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    assert unchanged.revenue_1y == first.revenue_1y
    # ... until the worker's first tick of a day brings the summary up to date.
    Worker(workspace).tick()
    refreshed = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    assert refreshed.revenue_1y == pytest.approx(first.revenue_1y - 1200, abs=0.01)


def test_a_new_day_rebuilds_the_summary(workspace: Workspace) -> None:
    today = compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    tomorrow = NOW + timedelta(days=1)
    later = compute_insights(workspace.engine, SEGMENT, workspace.compile_context(now=tomorrow))
    assert later.orders_as_of == tomorrow.isoformat(timespec="seconds")
    assert today.orders_as_of == NOW.isoformat(timespec="seconds")


def test_the_worker_makes_no_summary_nobody_asked_for(workspace: Workspace) -> None:
    Worker(workspace).tick()
    assert workspace.refresh_order_summary() is None
    compute_insights(workspace.engine, SEGMENT, workspace.compile_context())
    assert workspace.refresh_order_summary() == NOW
