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

from audience.compile.campaign import (
    ACTIVATION_KIND,
    ACTIVATION_NAME,
    CUSTOMER,
    IS_CONTROL,
    SUB_AUDIENCE,
)
from audience.compile.conditions import CompileContext
from audience.compile.history import CountedRun
from audience.compile.sql import column, count_if, false_if_null, number, string, table

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


def _due_times(runs: Sequence[CountedRun]) -> exp.Select | exp.Union:
    """The counted runs as rows (run_id, due): a run's customers count from its due time, the
    moment it chose them as of (a simulated `--now` included)."""
    rows = [
        exp.select(exp.alias_(string(r.id), "run_id"), exp.alias_(_timestamp(r.due), "due"))
        for r in runs
    ]
    union: exp.Select | exp.Union = rows[0]
    for row in rows[1:]:
        union = exp.union(union, row, distinct=False)
    return union


def _bounds(measurement: Measurement) -> tuple[datetime, datetime]:
    """The earliest start and the latest end of anyone's span: orders outside them are skipped
    before the join (a plain range filter the engine pushes into its scan of the events)."""
    starts = [
        max(r.due, measurement.launch) if measurement.launch else r.due for r in measurement.runs
    ]
    return min(starts), min(max(starts) + measurement.window, measurement.as_of)


def _members(measurement: Measurement) -> exp.Select:
    """Each customer once per group of their first counted run, with `starts_at`, the due time
    of that run (the launch, when later) and `ends_at`. With one run both are constants."""
    ledger = measurement.recipients_table
    keys = (CUSTOMER, *GROUP_KEYS)
    mine = exp.and_(
        column(ACTIVATION_KIND).eq(string(measurement.kind)),
        column(ACTIVATION_NAME).eq(string(measurement.name)),
        column("run_id").isin(*(string(r.id) for r in measurement.runs)),
    )
    if len(measurement.runs) == 1:
        starts, ends = _bounds(measurement)
        distinct = exp.select(*(column(c) for c in keys)).distinct().from_(table(ledger))
        return exp.select(
            *(column(c) for c in keys),
            exp.alias_(_timestamp(starts), "starts_at"),
            exp.alias_(_timestamp(ends), "ends_at"),
        ).from_(exp.alias_(distinct.where(mine).subquery(), "d"))
    due = exp.column("due", table="r", quoted=True)
    sent = (
        exp.select(
            *(exp.column(c, table="l", quoted=True) for c in keys), exp.alias_(due, "sent_at")
        )
        .distinct()
        .from_(exp.alias_(table(ledger), "l"))
        .join(
            exp.alias_(_due_times(measurement.runs).subquery(), "r"),
            on=exp.column("run_id", table="l", quoted=True).eq(
                exp.column("run_id", table="r", quoted=True)
            ),
        )
        .where(mine.transform(_in_ledger))
    )
    first = exp.Window(this=exp.func("MIN", column("sent_at")), partition_by=[column(CUSTOMER)])
    firsts = exp.select(*(column(c) for c in keys), column("sent_at"), exp.alias_(first, "entered"))
    started: exp.Expr = column("entered")
    if measurement.launch is not None:
        started = exp.Greatest(this=started, expressions=[_timestamp(measurement.launch)])
    hours = exp.Interval(
        this=string(str(int(measurement.window.total_seconds() // 3600))), unit=exp.var("HOUR")
    )
    ends_at = exp.Least(
        this=exp.Add(this=started.copy(), expression=hours),
        expressions=[_timestamp(measurement.as_of)],
    )
    return (
        exp.select(
            *(column(c) for c in keys),
            exp.alias_(started, "starts_at"),
            exp.alias_(ends_at, "ends_at"),
        )
        .from_(exp.alias_(firsts.from_(exp.alias_(sent.subquery(), "s")).subquery(), "f"))
        .where(column("sent_at").eq(column("entered")))
    )


def _in_ledger(node: exp.Expr) -> exp.Expr:
    """A bare column as the ledger's (`l`), beside the runs' columns in one FROM."""
    if isinstance(node, exp.Column) and not node.table:
        return exp.column(node.name, table="l", quoted=True)
    return node


def results_query(measurement: Measurement, ctx: CompileContext) -> exp.Select:
    """One row per group: sub_audience, treatment, is_control, recipients, purchasers, orders,
    revenue, revenue_squares and first_start (when its earliest customer's measurement began).

    Orders are summed per customer over their span first (`bought`), then per group, so the
    engine groups the orders by one key and the members by the group's."""
    names = ctx.tables
    events = ctx.catalog.columns(names.events)
    for needed in (names.id, names.order_id, names.order_datetime, names.order_revenue):
        ctx.catalog.kind(names.events, needed)  # a missing column is named, not an engine error
    their_id: exp.Expr = exp.column(names.id, table="t", quoted=True)
    if events[names.id] != "string":  # the ledger keeps ids as text
        their_id = exp.cast(their_id, exp.DataType.Type.TEXT)
    when = exp.column(names.order_datetime, table="t", quoted=True)
    lowest, highest = _bounds(measurement)
    kept: list[exp.Expr] = [
        exp.GTE(this=when.copy(), expression=_timestamp(lowest)),
        exp.LT(this=when.copy(), expression=_timestamp(highest)),
    ]
    for flag in (names.is_return, names.is_cancellation):
        if flag in events:
            kept.append(exp.not_(false_if_null(exp.column(flag, table="t", quoted=True))))
    order_id: exp.Expr = exp.column(names.order_id, table="t", quoted=True)
    if not names.events_one_row_per_order:
        order_id = exp.Distinct(expressions=[order_id])
    sums = (
        exp.alias_(exp.Count(this=order_id), "orders"),
        exp.alias_(
            exp.func("SUM", exp.column(names.order_revenue, table="t", quoted=True)), "revenue"
        ),
    )
    events_table = exp.alias_(table(names.events), "t")
    if len(measurement.runs) == 1:
        # Everyone's span is the same: the window's orders summed per customer, as a
        # hand-written script would, then matched to the members.
        bought = (
            exp.select(exp.alias_(their_id, CUSTOMER), *sums)
            .from_(events_table)
            .where(exp.and_(*kept))
            .group_by(their_id.copy())
        )
    else:
        # Within one run a customer is in one group; several runs at one due time could differ.
        spans = exp.select(column(CUSTOMER), column("starts_at"), column("ends_at"))
        spans = spans.distinct().from_("members")
        bought = (
            exp.select(exp.column(CUSTOMER, table="m", quoted=True), *sums)
            .from_(events_table)
            .join(
                exp.alias_(spans.subquery(), "m"),
                on=exp.and_(
                    their_id.eq(exp.column(CUSTOMER, table="m", quoted=True)),
                    exp.GTE(
                        this=when.copy(),
                        expression=exp.column("starts_at", table="m", quoted=True),
                    ),
                    exp.LT(
                        this=when.copy(), expression=exp.column("ends_at", table="m", quoted=True)
                    ),
                ),
            )
            .where(exp.and_(*kept))
            .group_by(exp.column(CUSTOMER, table="m", quoted=True))
        )
    bought_revenue = exp.column("revenue", table="b", quoted=True)
    as_double = exp.cast(exp.func("COALESCE", bought_revenue, number(0)), exp.DataType.Type.DOUBLE)
    return (
        exp.select(
            *(exp.column(c, table="m", quoted=True) for c in GROUP_KEYS),
            exp.alias_(exp.Count(this=exp.Star()), "recipients"),
            count_if(
                exp.GT(this=exp.column("orders", table="b", quoted=True), expression=number(0)),
                "purchasers",
            ),
            exp.alias_(
                exp.func(
                    "COALESCE",
                    exp.func("SUM", exp.column("orders", table="b", quoted=True)),
                    number(0),
                ),
                "orders",
            ),
            exp.alias_(
                exp.func("COALESCE", exp.func("SUM", bought_revenue.copy()), number(0)),
                "revenue",
            ),
            exp.alias_(
                exp.func("SUM", exp.Mul(this=as_double, expression=as_double.copy())),
                "revenue_squares",
            ),
            exp.alias_(
                exp.func("MIN", exp.column("starts_at", table="m", quoted=True)), "first_start"
            ),
        )
        .with_("members", as_=_members(measurement))
        .with_("bought", as_=bought)
        .from_(exp.alias_(exp.to_identifier("members"), "m"))
        .join(
            exp.alias_(exp.to_identifier("bought"), "b"),
            on=exp.column(CUSTOMER, table="m", quoted=True).eq(
                exp.column(CUSTOMER, table="b", quoted=True)
            ),
            join_type="left",
        )
        .group_by(*(exp.column(c, table="m", quoted=True) for c in GROUP_KEYS))
    )
