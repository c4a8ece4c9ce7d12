"""Segment insights as one query (SPEC §2), plus one for a breakdown by an attribute.

Shape, chosen so a small segment costs little on a large table: the members are selected first,
only their orders of the last year are aggregated, and the two totals the shares need (all
customers, all revenue of the year) are plain scans without a join.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from audience.compile.catalog import ColumnKind
from audience.compile.conditions import (
    CompileContext,
    column,
    day_literal,
    false_if_null,
    number,
    segment_predicate,
    string,
    table,
)
from audience.compile.dates import days_before
from audience.definitions.segment import Segment

BREAKDOWN_LIMIT = 20
"""How many top values a breakdown lists."""


def insights_query(segment: Segment, ctx: CompileContext) -> exp.Select:
    """One row: all_customers, all_revenue_1y, customers, active_customers, orders_1y,
    revenue_1y, reachable_email, reachable_sms, reachable_mail."""
    reach = [
        _count_if(exp.column(f"reach_{channel}", table="m", quoted=True), f"reachable_{channel}")
        for channel in ("email", "sms", "mail")
    ]
    return _joined(segment, ctx, extra=()).select(
        exp.alias_(exp.Subquery(this=_count_all(ctx)), "all_customers"),
        exp.alias_(exp.Subquery(this=_revenue_all(ctx)), "all_revenue_1y"),
        exp.alias_(exp.Count(this=exp.Star()), "customers"),
        exp.alias_(
            exp.Count(this=exp.column(ctx.tables.id, table="o", quoted=True)), "active_customers"
        ),
        exp.alias_(_sum(exp.column("orders", table="o")), "orders_1y"),
        exp.alias_(_sum(exp.column("revenue", table="o")), "revenue_1y"),
        *reach,
    )


def breakdown_query(segment: Segment, attribute: str, ctx: CompileContext) -> exp.Select:
    """Top values of `attribute` among the members: value, customers, revenue_1y."""
    ctx.catalog.kind(ctx.tables.profile, attribute, field_path="by")
    value = exp.column(attribute, table="m", quoted=True)
    return (
        _joined(segment, ctx, extra=(attribute,))
        .select(
            exp.alias_(value, "value"),
            exp.alias_(exp.Count(this=exp.Star()), "customers"),
            exp.alias_(_sum(exp.column("revenue", table="o")), "revenue_1y"),
        )
        .group_by(value.copy())
        .order_by(exp.Ordered(this=exp.column("customers"), desc=True), exp.column("value"))
        .limit(BREAKDOWN_LIMIT)
    )


def _joined(segment: Segment, ctx: CompileContext, extra: tuple[str, ...]) -> exp.Select:
    """`WITH members, member_orders SELECT … FROM members m LEFT JOIN member_orders o`."""
    id_column = ctx.tables.id
    return (
        exp.select()
        .with_("members", as_=_members(segment, ctx, extra))
        .with_("member_orders", as_=_member_orders(ctx))
        .from_(exp.alias_(exp.to_table("members"), "m"))
        .join(
            exp.alias_(exp.to_table("member_orders"), "o"),
            on=exp.EQ(
                this=exp.column(id_column, table="m", quoted=True),
                expression=exp.column(id_column, table="o", quoted=True),
            ),
            join_type="left",
        )
    )


def _members(segment: Segment, ctx: CompileContext, extra: tuple[str, ...]) -> exp.Select:
    names = ctx.tables
    profile = ctx.catalog.columns(names.profile)
    reach = {
        "email": _reachable(profile, names.email, names.email_opt_out),
        "sms": _reachable(profile, names.phone, names.sms_opt_out),
        "mail": _reachable(profile, names.address, None, also=names.postal),
    }
    return (
        exp.select(
            column(names.id),
            *(exp.alias_(expression, f"reach_{channel}") for channel, expression in reach.items()),
            *(column(name) for name in extra if name != names.id),
        )
        .from_(table(names.profile))
        .where(segment_predicate(segment, ctx))
    )


def _reachable(
    profile: Mapping[str, ColumnKind], contact: str, opt_out: str | None, *, also: str | None = None
) -> exp.Expr:
    """Has a value and has not opted out (a NULL opt-out is not an opt-out)."""
    needed = [contact, *([also] if also else [])]
    if any(name not in profile for name in needed):
        return exp.false()
    parts: list[exp.Expr] = [
        exp.NEQ(this=exp.Trim(this=column(name)), expression=string("")) for name in needed
    ]
    if opt_out is not None and opt_out in profile:
        parts.append(exp.not_(false_if_null(column(opt_out))))
    return false_if_null(exp.and_(*parts))


def _valid_orders_last_year(ctx: CompileContext) -> list[exp.Expr]:
    names = ctx.tables
    events = ctx.catalog.columns(names.events)
    start = days_before(ctx.today, 1, "years")
    filters: list[exp.Expr] = [
        exp.GTE(
            this=column(names.order_datetime),
            expression=day_literal(start, events.get(names.order_datetime, "timestamp")),
        )
    ]
    for flag in (names.is_return, names.is_cancellation):
        if flag in events:
            filters.append(exp.not_(false_if_null(column(flag))))
    return filters


def _member_orders(ctx: CompileContext) -> exp.Select:
    names = ctx.tables
    member_ids = exp.select(column(names.id)).from_("members")
    return (
        exp.select(
            column(names.id),
            exp.alias_(
                exp.Count(this=exp.Distinct(expressions=[column(names.order_id)])), "orders"
            ),
            exp.alias_(exp.func("SUM", column(names.order_revenue)), "revenue"),
        )
        .from_(table(names.events))
        .where(
            exp.and_(
                *_valid_orders_last_year(ctx),
                exp.In(this=column(names.id), query=exp.Subquery(this=member_ids)),
            )
        )
        .group_by(column(names.id))
    )


def _count_all(ctx: CompileContext) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star())).from_(table(ctx.tables.profile))


def _revenue_all(ctx: CompileContext) -> exp.Select:
    return (
        exp.select(_sum(column(ctx.tables.order_revenue)))
        .from_(table(ctx.tables.events))
        .where(exp.and_(*_valid_orders_last_year(ctx)))
    )


def _sum(expression: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", exp.func("SUM", expression), number(0))


def _count_if(condition: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(
        _sum(exp.Case(ifs=[exp.If(this=condition, true=number(1))], default=number(0))), name
    )
