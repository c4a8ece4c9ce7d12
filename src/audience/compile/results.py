"""Results of an activation (SPEC §8) as one query: per group, what its customers bought.

From the recipients ledger (the runs that count) and the event table, per (sub-audience,
treatment, control): recipients, purchasers, orders, revenue, and the sum of squares of each
customer's revenue, which Welch's interval needs. The engine does all the per-customer work:

- each customer is measured in the group(s) of their first run of the activation, from
  `starts_at` = that run's due time (or the launch, when later) to `ends_at` = the window's end or
  the as-of time, whichever comes first, so each entrant of a recurring campaign counts from
  their own start and no customer is counted twice in one group;
- orders are those of the event table inside that span, without returns and cancellations
  (as insights count them); a customer with none counts as a recipient who did not purchase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlglot import exp

from audience.compile.audience import (
    ACTIVATION_KIND,
    ACTIVATION_NAME,
    CUSTOMER,
    IS_CONTROL,
    SUB_AUDIENCE,
)
from audience.compile.conditions import CompileContext, column, false_if_null, number, string, table
from audience.compile.history import CountedRun

TREATMENT = "treatment"
GROUP_KEYS = (SUB_AUDIENCE, TREATMENT, IS_CONTROL)


@dataclass(frozen=True)
class Measurement:
    """What is measured: one activation's counted runs, over which span."""

    kind: str
    name: str
    runs: Sequence[CountedRun]
    """The runs that count (successful, not tests), at least one."""
    launch: datetime | None
    """When measurement starts for everyone (a campaign's launch date); None: each customer's
    first run."""
    window: timedelta
    as_of: datetime
    recipients_table: str = "audience_recipients"


def _timestamp(moment: datetime) -> exp.Expr:
    return exp.cast(
        string(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
        exp.DataType.Type.TIMESTAMP,
    )


def _due_times(runs: Sequence[CountedRun]) -> exp.Select:
    """The counted runs as rows (run_id, due): a run's customers count from its due time, the
    moment it chose them as of (a simulated `--now` included)."""
    rows = [
        exp.select(exp.alias_(string(r.id), "run_id"), exp.alias_(_timestamp(r.due), "due"))
        for r in runs
    ]
    union: exp.Select | exp.Union = rows[0]
    for row in rows[1:]:
        union = exp.union(union, row, distinct=False)
    return exp.select("*").from_(exp.alias_(union.subquery(), "r"))


def results_query(measurement: Measurement, ctx: CompileContext) -> exp.Select:
    """One row per group: sub_audience, treatment, is_control, recipients, purchasers, orders,
    revenue, revenue_squares and first_start (when its earliest customer's measurement began)."""
    names = ctx.tables
    events = ctx.catalog.columns(names.events)
    for needed in (names.id, names.order_id, names.order_datetime, names.order_revenue):
        ctx.catalog.kind(names.events, needed)  # a missing column is named, not an engine error
    sent = (
        exp.select(
            *(exp.column(c, table="l", quoted=True) for c in (CUSTOMER, *GROUP_KEYS)),
            exp.alias_(exp.column("due", table="r", quoted=True), "sent_at"),
        )
        .from_(exp.alias_(table(measurement.recipients_table), "l"))
        .join(
            exp.alias_(exp.to_identifier("runs"), "r"),
            on=exp.column("run_id", table="l", quoted=True).eq(
                exp.column("run_id", table="r", quoted=True)
            ),
        )
        .where(
            exp.and_(
                exp.column(ACTIVATION_KIND, table="l", quoted=True).eq(string(measurement.kind)),
                exp.column(ACTIVATION_NAME, table="l", quoted=True).eq(string(measurement.name)),
                exp.LT(
                    this=exp.column("due", table="r", quoted=True),
                    expression=_timestamp(measurement.as_of),
                ),
            )
        )
    )
    entries = (
        exp.select(column(CUSTOMER), exp.alias_(exp.func("MIN", column("sent_at")), "entered"))
        .from_("sent")
        .group_by(column(CUSTOMER))
    )
    started: exp.Expr = exp.column("entered", table="f", quoted=True)
    if measurement.launch is not None:
        started = exp.Greatest(this=started, expressions=[_timestamp(measurement.launch)])
    members = (
        exp.select(
            *(exp.column(c, table="s", quoted=True) for c in (CUSTOMER, *GROUP_KEYS)),
            exp.alias_(started, "starts_at"),
        )
        .distinct()
        .from_(exp.alias_(exp.to_identifier("sent"), "s"))
        .join(
            exp.alias_(exp.to_identifier("entries"), "f"),
            on=exp.and_(
                exp.column(CUSTOMER, table="s", quoted=True).eq(
                    exp.column(CUSTOMER, table="f", quoted=True)
                ),
                exp.column("sent_at", table="s", quoted=True).eq(
                    exp.column("entered", table="f", quoted=True)
                ),
            ),
        )
    )
    hours = exp.Interval(
        this=string(str(int(measurement.window.total_seconds() // 3600))), unit=exp.var("HOUR")
    )
    ends = exp.Least(
        this=exp.Add(this=column("starts_at"), expression=hours),
        expressions=[_timestamp(measurement.as_of)],
    )
    spans = exp.select(
        *(column(c) for c in (CUSTOMER, *GROUP_KEYS, "starts_at")), exp.alias_(ends, "ends_at")
    ).from_("members")
    their_id: exp.Expr = exp.column(names.id, table="t", quoted=True)
    if events[names.id] != "string":  # the ledger keeps ids as text
        their_id = exp.cast(their_id, exp.DataType.Type.TEXT)
    when = exp.column(names.order_datetime, table="t", quoted=True)
    joined: list[exp.Expr] = [
        their_id.eq(exp.column(CUSTOMER, table="m", quoted=True)),
        exp.GTE(this=when, expression=exp.column("starts_at", table="m", quoted=True)),
        exp.LT(this=when.copy(), expression=exp.column("ends_at", table="m", quoted=True)),
    ]
    for flag in (names.is_return, names.is_cancellation):
        if flag in events:
            joined.append(exp.not_(false_if_null(exp.column(flag, table="t", quoted=True))))
    revenue = exp.func(
        "COALESCE",
        exp.func("SUM", exp.column(names.order_revenue, table="t", quoted=True)),
        number(0),
    )
    kept = (CUSTOMER, *GROUP_KEYS, "starts_at")
    per_customer = (
        exp.select(
            *(exp.column(c, table="m", quoted=True) for c in kept),
            exp.alias_(
                exp.Count(
                    this=exp.Distinct(
                        expressions=[exp.column(names.order_id, table="t", quoted=True)]
                    )
                ),
                "orders",
            ),
            exp.alias_(revenue, "revenue"),
        )
        .from_(exp.alias_(exp.to_identifier("spans"), "m"))
        .join(exp.alias_(table(names.events), "t"), on=exp.and_(*joined), join_type="left")
        .group_by(*(exp.column(c, table="m", quoted=True) for c in kept))
    )
    as_double = exp.cast(column("revenue"), exp.DataType.Type.DOUBLE)
    bought = exp.Case(
        ifs=[exp.If(this=exp.GT(this=column("orders"), expression=number(0)), true=number(1))],
        default=number(0),
    )
    return (
        exp.select(
            *(column(c) for c in GROUP_KEYS),
            exp.alias_(exp.Count(this=exp.Star()), "recipients"),
            exp.alias_(exp.func("SUM", bought), "purchasers"),
            exp.alias_(exp.func("SUM", column("orders")), "orders"),
            exp.alias_(exp.func("SUM", column("revenue")), "revenue"),
            exp.alias_(
                exp.func("SUM", exp.Mul(this=as_double, expression=as_double.copy())),
                "revenue_squares",
            ),
            exp.alias_(exp.func("MIN", column("starts_at")), "first_start"),
        )
        .with_("runs", as_=_due_times(measurement.runs))
        .with_("sent", as_=sent)
        .with_("entries", as_=entries)
        .with_("members", as_=members)
        .with_("spans", as_=spans)
        .with_("per_customer", as_=per_customer)
        .from_("per_customer")
        .group_by(*(column(c) for c in GROUP_KEYS))
    )
