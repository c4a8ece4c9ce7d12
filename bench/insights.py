"""Segment insights: Audience against a hand-written DuckDB query, in the same process.

Each side gets one warm-up run, then the best of `repeat` timed runs is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.table import Table

from audience.activation.insights import compute_insights
from audience.definitions.segment import Segment
from audience.workspace import Workspace

SEGMENTS: dict[str, tuple[dict[str, Any], str]] = {
    "attribute-only": (
        {
            "all": [
                {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                {"attribute": "lifetime_revenue", "op": ">", "value": 500},
            ]
        },
        "loyalty_tier in ('gold', 'platinum') and lifetime_revenue > 500",
    ),
    "nested any/all, relative dates": (
        {
            "all": [
                {"attribute": "last_order_date", "op": "within_last", "value": 90, "unit": "days"},
                {
                    "any": [
                        {"attribute": "state", "op": "in", "value": ["WA", "OR", "CA"]},
                        {
                            "all": [
                                {"attribute": "rfm_monetary", "op": ">=", "value": 8},
                                {
                                    "attribute": "birthdate",
                                    "op": "more_than_ago",
                                    "value": 40,
                                    "unit": "years",
                                },
                            ]
                        },
                    ]
                },
            ]
        },
        "last_order_date >= current_date - interval 90 day and (state in ('WA', 'OR', 'CA') "
        "or (rfm_monetary >= 8 and birthdate < current_date - interval 40 year))",
    ),
    "purchased in window": (
        {
            "purchased": {
                "where": {"attribute": "product_category", "op": "=", "value": "Shoes"},
                "within_last": {"value": 90, "unit": "days"},
                "orders": {"op": ">=", "value": 2},
            }
        },
        "amperity_id in (select amperity_id from unified_transactions where product_category = "
        "'Shoes' and not is_return and not is_cancellation and order_datetime >= current_date - "
        "interval 90 day group by amperity_id having count(distinct order_id) >= 2)",
    ),
}

HAND_WRITTEN = """
with seg as (
    select amperity_id, email, email_opt_out, phone, sms_opt_out, address, postal
    from customer_360 where {where}
), tx as (
    select amperity_id, count(*) as orders, sum(order_revenue) as revenue
    from unified_transactions
    where not is_return and not is_cancellation
      and order_datetime >= current_date - interval 1 year
      and amperity_id in (select amperity_id from seg)
    group by amperity_id
)
select
    (select count(*) from customer_360) as all_customers,
    (select sum(order_revenue) from unified_transactions where not is_return
        and not is_cancellation and order_datetime >= current_date - interval 1 year)
        as all_revenue,
    count(*) as customers, count(tx.amperity_id) as active,
    sum(tx.revenue) as revenue, sum(tx.orders) as orders,
    count(*) filter (where email <> '' and email_opt_out is not true) as email,
    count(*) filter (where phone <> '' and sms_opt_out is not true) as sms,
    count(*) filter (where address <> '' and postal <> '') as mail
from seg left join tx on seg.amperity_id = tx.amperity_id
"""


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time of `repeat` runs after one warm-up, and the last result."""
    result = run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(ws: Workspace, profiles: int, repeat: int) -> Table:
    """Time each segment's insights both ways; one table."""
    connection = getattr(ws.engine, "connection")  # noqa: B009 - the DuckDB engine's own
    orders = connection.execute("select count(*) from unified_transactions").fetchone()[0]
    table = Table(
        title=f"Segment insights — {profiles:,} profiles, {orders:,} orders, best of {repeat}"
    )
    for column in ("segment", "customers", "Audience s", "hand-written s", "ratio"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    ctx = ws.compile_context()
    for name, (condition, where) in SEGMENTS.items():
        segment = Segment.model_validate({"name": name, "where": condition})
        ours, insights = best_of(repeat, lambda s=segment: compute_insights(ws.engine, s, ctx))
        sql = HAND_WRITTEN.format(where=where)
        theirs, row = best_of(repeat, lambda q=sql: connection.execute(q).fetchone())
        if row[2] != insights.customers:
            raise SystemExit(f"{name}: Audience counted {insights.customers}, SQL {row[2]}")
        table.add_row(
            name, f"{insights.customers:,}", f"{ours:.3f}", f"{theirs:.3f}", f"{ours / theirs:.2f}"
        )
    return table
