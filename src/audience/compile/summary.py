"""The order summary: each customer's orders and revenue of the last year, as of one day.

Insights need, for a segment's members, their orders of the last year; reading them from the
event table costs a pass over a year of orders per refresh. The summary holds one row per
customer who ordered in the year (and one, with no customer, for orders without one), so
insights join a table of customers instead. It is kept in the engine (`activation.summary`)
and rebuilt when its recipe (this module's query, whose text carries the day the year starts)
or the event table's fingerprint no longer match.
"""

from __future__ import annotations

from sqlglot import exp

from audience.compile.conditions import CompileContext, order_count
from audience.compile.dates import day_after, days_before
from audience.compile.sql import column, day_literal, false_if_null, table

SUMMARY = "audience_order_summary"
SUMMARY_STATE = "audience_order_summary_state"
CUSTOMER = "customer"
ORDERS = "orders_1y"
REVENUE = "revenue_1y"
STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recipe", "TEXT"),
    ("event_rows", "BIGINT"),
    ("latest_event", "TEXT"),
    ("built_at", "TIMESTAMP"),
)
"""The summary's provenance: the SQL that built it, what the event table held then (row count,
latest order time, as the engine writes it in text) and when (UTC, without a zone: every engine
reads that back alike)."""


def valid_orders_last_year(ctx: CompileContext) -> list[exp.Expr]:
    """The filters of an order that counts in the last year: on or after the start of the day
    one year before today and before the end of today (as `purchased` counts: as of an earlier
    day, later orders have not happened yet), neither a return nor a cancellation."""
    names = ctx.tables
    events = ctx.catalog.columns(names.events)
    kind = events.get(names.order_datetime, "timestamp")
    start = days_before(ctx.today, 1, "years")
    filters: list[exp.Expr] = [
        exp.GTE(this=column(names.order_datetime), expression=day_literal(start, kind)),
        exp.LT(
            this=column(names.order_datetime),
            expression=day_literal(day_after(ctx.today), kind),
        ),
    ]
    for flag in (names.is_return, names.is_cancellation):
        if flag in events:
            filters.append(exp.not_(false_if_null(column(flag))))
    return filters


def summary_query(ctx: CompileContext) -> exp.Select:
    """One row per customer with a valid order in the last year: customer, orders_1y,
    revenue_1y (orders without a customer make one row of their own, for the total)."""
    names = ctx.tables
    return (
        exp.select(
            exp.alias_(column(names.id), CUSTOMER, quoted=True),
            exp.alias_(order_count(names), ORDERS, quoted=True),
            exp.alias_(exp.func("SUM", column(names.order_revenue)), REVENUE, quoted=True),
        )
        .from_(table(names.events))
        .where(exp.and_(*valid_orders_last_year(ctx)))
        .group_by(column(names.id))
    )


def fingerprint_query(ctx: CompileContext) -> exp.Select:
    """What the event table holds now, cheaply: its rows and its latest order time (engines
    answer both from statistics or an index). A load of new orders, a deletion or a reload
    changes one of them; an edit in place of an older order does not (the daily refresh and the
    as-of time shown with insights cover that)."""
    names = ctx.tables
    return exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "event_rows"),
        exp.alias_(
            exp.cast(exp.func("MAX", column(names.order_datetime)), exp.DataType.Type.TEXT),
            "latest_event",
        ),
    ).from_(table(names.events))


def state_query() -> exp.Select:
    """The summary's recorded provenance (one row once it was built)."""
    return exp.select(*(column(name) for name, _ in STATE_COLUMNS)).from_(table(SUMMARY_STATE))
