"""Segment insights as one query (SPEC §2), plus one for a breakdown by an attribute.

Shape, chosen so a segment costs little on a large table: the members are selected once from the
profile table, and their counts come from one pass over them; their orders of the last year come
from the order summary (`compile.summary`: one row per customer who ordered), joined to the
members, never from the event table itself; the two totals the shares need are the profile's rows
and the summary's revenue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from audience.compile.catalog import ColumnKind
from audience.compile.conditions import CompileContext, segment_predicate
from audience.compile.sql import column, count_if, false_if_null, has_value, number, table
from audience.compile.summary import CUSTOMER, ORDERS, REVENUE, SUMMARY
from audience.definitions.segment import Segment

BREAKDOWN_LIMIT = 20
"""How many top values a breakdown lists."""
CHANNELS = ("email", "sms", "mail")


def insights_query(segment: Segment, ctx: CompileContext) -> exp.Select:
    """One row: all_customers, all_revenue_1y, customers, reachable_email, reachable_sms,
    reachable_mail, active_customers, orders_1y, revenue_1y (the order summary must be
    current: `activation.summary` sees to it)."""
    members = exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "customers"),
        *(count_if(exp.column(f"reach_{c}", quoted=True), f"reachable_{c}") for c in CHANNELS),
    ).from_("members")
    member_orders = (
        exp.select(
            exp.alias_(exp.Count(this=exp.Star()), "active_customers"),
            exp.alias_(_sum(column(ORDERS)), "orders_1y"),
            exp.alias_(_sum(column(REVENUE)), "revenue_1y"),
        )
        .from_(table(SUMMARY))
        .where(_is_member(ctx))
    )
    return (
        exp.select(
            exp.alias_(exp.Subquery(this=_count_all(ctx)), "all_customers"),
            exp.alias_(exp.Subquery(this=_revenue_all()), "all_revenue_1y"),
            *(
                exp.column(name, table="m")
                for name in ("customers", *(f"reachable_{c}" for c in CHANNELS))
            ),
            *(
                exp.column(name, table="o")
                for name in ("active_customers", "orders_1y", "revenue_1y")
            ),
        )
        .with_("members", as_=_members(segment, ctx, extra=()))
        .from_(exp.alias_(exp.Subquery(this=members), "m"))
        .join(exp.alias_(exp.Subquery(this=member_orders), "o"), join_type="cross")
    )


def breakdown_query(segment: Segment, attribute: str, ctx: CompileContext) -> exp.Select:
    """Top values of `attribute` among the members: value, customers, revenue_1y (from the
    order summary, which must be current)."""
    ctx.catalog.kind(ctx.tables.profile, attribute, field_path="by")
    value = exp.column(attribute, table="m", quoted=True)
    return (
        exp.select(
            exp.alias_(value, "value"),
            exp.alias_(exp.Count(this=exp.Star()), "customers"),
            exp.alias_(_sum(exp.column(REVENUE, table="o", quoted=True)), "revenue_1y"),
        )
        .with_("members", as_=_members(segment, ctx, extra=(attribute,)))
        .from_(exp.alias_(exp.to_table("members"), "m"))
        .join(
            exp.alias_(table(SUMMARY), "o"),
            on=exp.EQ(
                this=exp.column(ctx.tables.id, table="m", quoted=True),
                expression=exp.column(CUSTOMER, table="o", quoted=True),
            ),
            join_type="left",
        )
        .group_by(value.copy())
        .order_by(exp.Ordered(this=exp.column("customers"), desc=True), exp.column("value"))
        .limit(BREAKDOWN_LIMIT)
    )


def top_values_query(of: str, attribute: str, ctx: CompileContext, limit: int) -> exp.Select:
    """The most frequent values of the column `attribute` of table `of` over everyone (a
    picklist for editors): value, customers (rows), most frequent first."""
    ctx.catalog.kind(of, attribute, field_path="attribute")
    value = column(attribute)
    return (
        exp.select(exp.alias_(value, "value"), exp.alias_(exp.Count(this=exp.Star()), "customers"))
        .from_(table(of))
        .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
        .group_by(value.copy())
        .order_by(exp.Ordered(this=exp.column("customers"), desc=True), exp.column("value"))
        .limit(limit)
    )


def _is_member(ctx: CompileContext) -> exp.Expr:
    """A summary row of a member (a row without a customer is nobody's)."""
    member_ids = exp.select(column(ctx.tables.id)).from_("members")
    return exp.In(this=column(CUSTOMER), query=exp.Subquery(this=member_ids))


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
    """Has a value (text that is not empty) and has not opted out (a NULL opt-out is not an
    opt-out)."""
    needed = [contact, *([also] if also else [])]
    if any(name not in profile for name in needed):
        return exp.false()
    parts: list[exp.Expr] = [has_value(column(name), profile[name]) for name in needed]
    if opt_out is not None and opt_out in profile:
        parts.append(exp.not_(false_if_null(column(opt_out))))
    return false_if_null(exp.and_(*parts))


def _count_all(ctx: CompileContext) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star())).from_(table(ctx.tables.profile))


def _revenue_all() -> exp.Select:
    return exp.select(_sum(column(REVENUE))).from_(table(SUMMARY))


def _sum(expression: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", exp.func("SUM", expression), number(0))


MAX_OVERLAP = 5
"""How many segments one overlap compares (SPEC §2)."""


def overlap_query(segments: Sequence[Segment], ctx: CompileContext) -> exp.Select:
    """One pass over the profile table: `customers_I` for each segment and `both_I_J` for each
    pair (I < J), counting customers in it (a NULL condition counts as not in)."""
    flags = [
        exp.alias_(segment_predicate(segment, ctx), f"in_{i}") for i, segment in enumerate(segments)
    ]
    members = exp.select(*flags).from_(table(ctx.tables.profile))
    counts = [count_if(exp.column(f"in_{i}"), f"customers_{i}") for i in range(len(segments))]
    counts += [
        count_if(exp.and_(exp.column(f"in_{i}"), exp.column(f"in_{j}")), f"both_{i}_{j}")
        for i in range(len(segments))
        for j in range(i + 1, len(segments))
    ]
    return exp.select(*counts).from_(exp.alias_(members.subquery(), "m"))
