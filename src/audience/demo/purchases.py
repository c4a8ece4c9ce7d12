"""Simulated purchases after the demo campaign, so its results have something to measure.

The sample's orders all lie before today; a campaign sent today can only be measured against
orders after it. This adds, for the recipients of one run (control included), orders dated in
the weeks after it, one at most per customer: each customer's chance of buying depends on their
group (the treatments a little more likely than control, the richer offer more so), drawn with
the portable hash, so the same seed gives the same orders on every engine. Order ids start with
`SIM-`; the demo re-records the events table as its own afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlglot import exp

from audience.activation.ledger import RECIPIENTS
from audience.compile.assignment import BUCKETS, bucket
from audience.compile.sql import column, number, string, table
from audience.demo.samples import SAMPLE_PURCHASE_DAYS
from audience.engines.base import Engine

BASE_RATE = 0.04
"""The chance that a control customer buys in those weeks."""


def simulate_purchases(
    engine: Engine,
    *,
    events: str,
    id_column: str,
    run_id: str,
    sent_at: datetime,
    rates: Mapping[str, float],
    seed: int,
) -> int:
    """Add the orders of `run_id`'s recipients after `sent_at` (`rates`: each treatment's chance
    of buying; control and any other group buy at BASE_RATE); how many were added."""
    customer = column("customer_id")
    chance = exp.Case(
        ifs=[
            exp.If(
                this=exp.and_(exp.not_(column("is_control")), column("treatment").eq(string(name))),
                true=number(int(rate * BUCKETS)),
            )
            for name, rate in rates.items()
        ],
        default=number(int(BASE_RATE * BUCKETS)),
    )
    draw = bucket(customer, f"demo-purchase:{seed}", engine.dialect)
    day = exp.Add(
        this=exp.Mod(
            this=bucket(customer, f"demo-day:{seed}", engine.dialect),
            expression=number(SAMPLE_PURCHASE_DAYS),
        ),
        expression=number(1),
    )
    start = exp.cast(
        string(sent_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
        exp.DataType.Type.TIMESTAMP,
    )
    revenue = exp.cast(
        exp.Add(
            this=number(30),
            expression=exp.Mod(
                this=bucket(customer, f"demo-revenue:{seed}", engine.dialect),
                expression=number(120),
            ),
        ),
        exp.DataType.build("DECIMAL(14,2)"),
    )
    buyers = (
        exp.select(
            customer,
            exp.alias_(
                exp.DPipe(this=string("SIM-"), expression=customer.copy(), safe=True), "order_id"
            ),
            # `day` days later, as an interval: Spark's DATE_ADD would drop the time of day
            exp.alias_(
                exp.Add(
                    this=start,
                    expression=exp.Mul(
                        this=exp.paren(day),
                        expression=exp.Interval(this=string("1"), unit=exp.var("DAY")),
                    ),
                ),
                "at",
            ),
            exp.alias_(revenue, "revenue"),
        )
        .distinct()
        .from_(table(RECIPIENTS))
        .where(exp.and_(column("run_id").eq(string(run_id)), exp.LT(this=draw, expression=chance)))
    )
    rows = exp.select(
        column("customer_id"),
        column("order_id"),
        column("at"),
        column("revenue"),
        number(1),
        string("Simulated"),
        string("Demo"),
        string("online"),
        exp.cast(exp.null(), exp.DataType.Type.TEXT),
        exp.false(),
        exp.false(),
    ).from_(exp.alias_(buyers.subquery(), "b"))
    before = _count(engine, events)
    engine.execute(
        exp.insert(
            rows,
            table(events),
            columns=[
                id_column,
                "order_id",
                "order_datetime",
                "order_revenue",
                "order_quantity",
                "product_category",
                "brand",
                "channel",
                "store_id",
                "is_return",
                "is_cancellation",
            ],
        )
    )
    return _count(engine, events) - before


def _count(engine: Engine, name: str) -> int:
    found = engine.rows(exp.select(exp.alias_(exp.Count(this=exp.Star()), "n")).from_(table(name)))
    return int(found[0]["n"])
