"""Segment insights: Audience against a hand-written DuckDB query, in the same process.

Each side gets one warm-up run, then the best of `repeat` timed runs is reported; so does a bare
count (Audience's compiled segment, counted, against a hand-written count). The order summary
insights read is built before the timed runs, as the worker or the day's first insights build it;
the time that took is printed in the title.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.table import Table
from sqlglot import exp

from audience.activation.insights import compute_insights
from audience.activation.summary import current_summary
from audience.compile.conditions import segment_ids
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
    """Time each segment's insights and bare count both ways; one table."""
    connection = getattr(ws.engine, "connection")  # noqa: B009 - the DuckDB engine's own
    orders = connection.execute("select count(*) from unified_transactions").fetchone()[0]
    ctx = ws.compile_context()
    start = time.perf_counter()
    current_summary(ws.engine, ctx)
    built = time.perf_counter() - start
    table = Table(
        title=f"Segment insights — {profiles:,} profiles, {orders:,} orders, best of {repeat} "
        f"(order summary brought up to date in {built:.1f} s first)"
    )
    columns = (
        "segment",
        "customers",
        "count s",
        "hand-written count s",
        "insights s",
        "hand-written insights s",
        "insights ratio",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "segment" else "right")
    for name, (condition, where) in SEGMENTS.items():
        segment = Segment.model_validate({"name": name, "where": condition})
        count_sql = exp.select(exp.Count(this=exp.Star())).from_(
            segment_ids(segment, ctx).subquery("members")
        )
        ours_count, counted = best_of(repeat, lambda q=count_sql: ws.engine.rows(q))
        hand_count = f"select count(*) from customer_360 where {where}"
        theirs_count, _ = best_of(repeat, lambda q=hand_count: connection.execute(q).fetchone())
        ours, insights = best_of(repeat, lambda s=segment: compute_insights(ws.engine, s, ctx))
        sql = HAND_WRITTEN.format(where=where)
        theirs, row = best_of(repeat, lambda q=sql: connection.execute(q).fetchone())
        customers = {insights.customers, row[2], next(iter(counted[0].values()))}
        if len(customers) != 1:
            raise SystemExit(f"{name}: the counts disagree: {customers}")
        table.add_row(
            name,
            f"{insights.customers:,}",
            f"{ours_count:.3f}",
            f"{theirs_count:.3f}",
            f"{ours:.3f}",
            f"{theirs:.3f}",
            f"{ours / theirs:.2f}",
        )
    return table
