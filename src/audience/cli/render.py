"""Rich renderings of results: tables a person reads at a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from rich.table import Table

from audience.activation.insights import Insights
from audience.store.metadata import AppliedChange


def insights_table(insights: Insights) -> Table:
    """One segment's figures, numbers and shares."""
    table = Table(title=f"Insights — {insights.segment}", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("customers", f"{insights.customers:,} ({insights.customers_share:.1%} of all)"),
        ("active in the last year", f"{insights.active_customers:,}"),
        ("revenue, last year", f"{insights.revenue_1y:,.2f} ({insights.revenue_1y_share:.1%})"),
        ("reachable by email", f"{insights.reachable_email:,}"),
        ("reachable by SMS", f"{insights.reachable_sms:,}"),
        ("reachable by mail", f"{insights.reachable_mail:,}"),
        ("revenue per customer", f"{insights.revenue_per_customer:,.2f}"),
        ("orders per customer", f"{insights.orders_per_customer:,.3f}"),
        ("average order value", f"{insights.average_order_value:,.2f}"),
        ("computed at", insights.computed_at),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def segments_table(results: Sequence[Insights]) -> Table:
    """Several segments side by side: the figures a marketer compares first."""
    table = Table(title="Sample segments")
    columns = ("segment", "customers", "share", "active 1y", "revenue 1y", "email", "SMS", "AOV")
    for name in columns:
        table.add_column(name, justify="left" if name == "segment" else "right")
    for r in results:
        table.add_row(
            r.segment,
            f"{r.customers:,}",
            f"{r.customers_share:.1%}",
            f"{r.active_customers:,}",
            f"{r.revenue_1y:,.0f}",
            f"{r.reachable_email:,}",
            f"{r.reachable_sms:,}",
            f"{r.average_order_value:,.2f}",
        )
    return table


def breakdown_table(insights: Insights) -> Table:
    """Top values of the breakdown attribute."""
    table = Table(title=f"{insights.segment} by {insights.breakdown_by}")
    table.add_column(str(insights.breakdown_by))
    table.add_column("customers", justify="right")
    table.add_column("revenue, last year", justify="right")
    for row in insights.breakdown:
        table.add_row(str(row.value), f"{row.customers:,}", f"{row.revenue_1y:,.2f}")
    return table


def summary_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    """Rows of dictionaries as a table of the given columns."""
    table = Table(title=title)
    for name in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in columns))
    return table


def arrow_table(title: str, data: pa.Table) -> Table:
    """An Arrow table (a preview) as a Rich table."""
    table = Table(title=title)
    for name in data.column_names:
        table.add_column(name, overflow="fold")
    for row in data.to_pylist():
        table.add_row(*(_cell(value) for value in row.values()))
    return table


def changes_table(changes: Sequence[AppliedChange]) -> Table:
    """What `apply` did with each document."""
    table = Table(title="Applied")
    for name in ("kind", "name", "version", "result"):
        table.add_column(name)
    for change in changes:
        result = "saved" if change.changed else "unchanged"
        table.add_row(change.kind, change.name, str(change.version), result)
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
