"""Segment insights equal the same figures computed by a hand-written query, on every engine."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from audience.activation.insights import compute_insights
from audience.definitions.segment import Segment
from audience.workspace import Workspace

SEGMENT = Segment.model_validate(
    {
        "name": "Loyal spenders",
        "where": {
            "all": [
                {"attribute": "lifetime_revenue", "op": ">", "value": 300},
                {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
            ]
        },
    }
)
HAND_WRITTEN = """
with seg as (
    select * from customer_360
    where lifetime_revenue > 300 and loyalty_tier in ('gold', 'platinum')
), tx as (
    select amperity_id, count(distinct order_id) as orders, sum(order_revenue) as revenue
    from unified_transactions
    where not coalesce(is_return, false) and not coalesce(is_cancellation, false)
      and order_datetime >= timestamp '{start} 00:00:00'
      and order_datetime < timestamp '{end} 00:00:00'
    group by amperity_id
)
select
    (select count(*) from customer_360) as all_customers,
    (select sum(revenue) from tx) as all_revenue,
    count(*) as customers,
    count(tx.amperity_id) as active,
    sum(tx.revenue) as revenue,
    sum(tx.orders) as orders,
    sum(case when email <> '' and email_opt_out is not true then 1 else 0 end) as email,
    sum(case when phone <> '' and sms_opt_out is not true then 1 else 0 end) as sms,
    sum(case when address <> '' and postal <> '' then 1 else 0 end) as mail
from seg left join tx on seg.amperity_id = tx.amperity_id
"""


def hand_written(ws: Workspace, today: date = date(2026, 11, 23)) -> dict[str, Any]:
    """The figures as of `today`: orders from a year before it to its end."""
    start = today.replace(year=today.year - 1)
    query = HAND_WRITTEN.format(start=start, end=today + timedelta(days=1))
    if ws.engine.dialect == "spark":  # a session, where the others have a connection
        found = getattr(ws.engine, "session").sql(query).first().asDict()  # noqa: B009
        names, row = list(found), list(found.values())
    else:
        connection = getattr(ws.engine, "connection")  # noqa: B009 - both engines expose one
        cursor = connection.execute(query)
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    # PostgreSQL answers Decimal where DuckDB answers float; compare numbers as floats.
    return {n: float(v) if not isinstance(v, int) else v for n, v in zip(names, row, strict=True)}


def test_insights_match_a_hand_written_query(sample_workspace: Workspace) -> None:
    expected = hand_written(sample_workspace)
    got = compute_insights(sample_workspace.engine, SEGMENT, sample_workspace.compile_context())
    assert got.customers == expected["customers"] > 0
    assert got.active_customers == expected["active"]
    assert got.revenue_1y == pytest.approx(expected["revenue"], abs=0.01)
    assert got.reachable_email == expected["email"]
    assert got.reachable_sms == expected["sms"]
    assert got.reachable_mail == expected["mail"]
    assert got.customers_share == pytest.approx(
        expected["customers"] / expected["all_customers"], abs=1e-4
    )
    assert got.revenue_1y_share == pytest.approx(
        expected["revenue"] / expected["all_revenue"], abs=1e-4
    )
    assert got.orders_per_customer == pytest.approx(
        expected["orders"] / expected["customers"], abs=1e-3
    )
    assert got.average_order_value == pytest.approx(
        expected["revenue"] / expected["orders"], abs=0.01
    )


def test_insights_as_of_an_earlier_day_leave_out_the_orders_after_it(
    sample_workspace: Workspace,
) -> None:
    ctx = sample_workspace.compile_context()
    earlier = ctx.now - timedelta(days=100)
    expected = hand_written(sample_workspace, earlier.date())
    got = compute_insights(
        sample_workspace.engine, SEGMENT, sample_workspace.compile_context(now=earlier)
    )
    assert got.active_customers == expected["active"] > 0
    assert got.revenue_1y == pytest.approx(expected["revenue"], abs=0.01)
    assert got.revenue_1y_share == pytest.approx(
        expected["revenue"] / expected["all_revenue"], abs=1e-4
    )


def test_insights_are_the_same_on_every_engine(sample_workspaces: dict[str, Workspace]) -> None:
    results = {
        name: compute_insights(ws.engine, SEGMENT, ws.compile_context(), by="state").model_dump(
            mode="json"
        )
        for name, ws in sample_workspaces.items()
    }
    assert results["duckdb"] == results["postgres"]


def test_insights_move_with_the_clock(sample_workspaces: dict[str, Workspace]) -> None:
    ws = sample_workspaces["duckdb"]
    now = ws.compile_context().now
    later = compute_insights(ws.engine, SEGMENT, ws.compile_context(now=now + timedelta(days=400)))
    today = compute_insights(ws.engine, SEGMENT, ws.compile_context())
    assert later.revenue_1y < today.revenue_1y  # a year on, most of this year's orders age out
    assert later.computed_at > today.computed_at
