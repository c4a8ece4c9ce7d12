"""Segment insights: make sure the order summary is current, run the one insights query, derive
the ratios, shape the result."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from audience.activation.summary import current_summary
from audience.compile.conditions import CompileContext
from audience.compile.insights import MAX_OVERLAP, breakdown_query, insights_query, overlap_query
from audience.definitions.segment import Segment
from audience.engines.base import Engine
from audience.errors import InvalidValue
from audience.shapes import Shape, left_out_when_none


class BreakdownRow(Shape):
    """Customers and revenue of one value of the breakdown attribute."""

    value: Any
    customers: int
    revenue_1y: float


class Figures(Shape):
    """The figures of SPEC §2 for one segment at one moment: what its history keeps of each
    refresh."""

    segment: str
    customers: int
    customers_share: float
    active_customers: int
    revenue_1y: float
    revenue_1y_share: float
    reachable_email: int
    reachable_sms: int
    reachable_mail: int
    revenue_per_customer: float
    orders_per_customer: float
    average_order_value: float
    computed_at: str


class Insights(Figures):
    """A segment's figures now (the shape of `segment insights --json` and of the API's
    insights), and its breakdown when one was asked for."""

    orders_as_of: str
    """When the orders behind the revenue and order figures were read (the order summary was
    built): the figures of customers count the profile table now."""
    breakdown_by: str | None = left_out_when_none()
    breakdown: list[BreakdownRow] | None = left_out_when_none()
    """The top values of `breakdown_by` (None, and no key, when none was asked for)."""

    def figures(self) -> dict[str, Any]:
        """What the insight history keeps of a refresh."""
        return self.model_dump(mode="json", include=set(Figures.model_fields))


class _Versioned(Shape):
    version: int


class Refresh(Figures, _Versioned):  # this order puts `version` first, as it has always been
    """One recorded refresh of a segment's insights, of that version of it (an item of
    `segment history --json`)."""


def compute_insights(
    engine: Engine, segment: Segment, ctx: CompileContext, *, by: str | None = None
) -> Insights:
    """All figures of a segment in one query (two with a breakdown), the order summary
    rebuilt first if it is stale."""
    breakdown_sql = breakdown_query(segment, by, ctx) if by is not None else None
    orders_as_of = current_summary(engine, ctx)
    row = engine.rows(insights_query(segment, ctx))[0]
    all_customers = int(row["all_customers"] or 0)
    customers = int(row["customers"] or 0)
    revenue = _money(row["revenue_1y"])
    all_revenue = _money(row["all_revenue_1y"])
    orders = int(row["orders_1y"] or 0)
    breakdown = None
    if breakdown_sql is not None:
        breakdown = [
            BreakdownRow(
                value=r["value"], customers=int(r["customers"]), revenue_1y=_money(r["revenue_1y"])
            )
            for r in engine.rows(breakdown_sql)
        ]
    return Insights(
        segment=segment.name,
        customers=customers,
        customers_share=_ratio(customers, all_customers, 4),
        active_customers=int(row["active_customers"] or 0),
        revenue_1y=revenue,
        revenue_1y_share=_ratio(revenue, all_revenue, 4),
        reachable_email=int(row["reachable_email"] or 0),
        reachable_sms=int(row["reachable_sms"] or 0),
        reachable_mail=int(row["reachable_mail"] or 0),
        revenue_per_customer=_ratio(revenue, customers, 2),
        orders_per_customer=_ratio(orders, customers, 3),
        average_order_value=_ratio(revenue, orders, 2),
        computed_at=_iso(ctx.now),
        orders_as_of=_iso(orders_as_of),
        breakdown_by=by,
        breakdown=breakdown,
    )


def _money(value: Decimal | float | int | None) -> float:
    return round(float(value or 0), 2)


def _ratio(numerator: float, denominator: float, digits: int) -> float:
    return round(numerator / denominator, digits) if denominator else 0.0


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class Pair(Shape):
    """Two segments' common customers, and what share of each they are."""

    first: str
    second: str
    both: int
    share_of_first: float | None
    """None when the first segment is empty: a share of nobody is not a number."""
    share_of_second: float | None


class SegmentSize(Shape):
    """One segment of an overlap, and its customers."""

    segment: str
    customers: int


class Overlap(Shape):
    """How up to five segments overlap: each one's customers, and each pair's common ones (the
    shape of `audience segment overlap --json` and of the API's overlap)."""

    segments: list[SegmentSize]
    pairs: list[Pair]

    @property
    def customers(self) -> dict[str, int]:
        """Each segment's customers, by name."""
        return {s.segment: s.customers for s in self.segments}


def compute_overlap(engine: Engine, segments: list[Segment], ctx: CompileContext) -> Overlap:
    """Pairwise overlap of two to five different segments, in one query."""
    names = [s.name for s in segments]
    if not 2 <= len(segments) <= MAX_OVERLAP or len(set(names)) != len(names):
        raise InvalidValue(
            f"overlap compares 2 to {MAX_OVERLAP} different segments, got {len(names)}"
            + ("" if len(set(names)) == len(names) else " with repeats"),
            field="segments",
        )
    row = engine.rows(overlap_query(segments, ctx))[0]
    customers = {name: int(row[f"customers_{i}"] or 0) for i, name in enumerate(names)}
    pairs = []
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            both = int(row[f"both_{i}_{j}"] or 0)
            second = names[j]
            pairs.append(
                Pair(
                    first=first,
                    second=second,
                    both=both,
                    share_of_first=_share(both, customers[first]),
                    share_of_second=_share(both, customers[second]),
                )
            )
    sizes = [SegmentSize(segment=name, customers=n) for name, n in customers.items()]
    return Overlap(segments=sizes, pairs=pairs)
