"""Rich renderings of results: tables a person reads at a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pyarrow as pa

    from audience.activation.insights import Insights
    from audience.activation.results import CampaignResults, Estimate
    from audience.store.metadata import AppliedChange


def number_column(table: Table, header: str, cells: Sequence[str]) -> None:
    """A right-aligned column exactly as wide as its widest number (or header word): on a narrow
    terminal the text columns wrap or fold, the header wraps, and a number is never cut."""
    width = max(len(cell) for cell in [*cells, *header.split(), "-"])
    table.add_column(
        Text(header, no_wrap=False, overflow="fold"), justify="right", no_wrap=True, width=width
    )


def text_column(table: Table, header: str) -> None:
    """A column of text that folds long words (URIs, ids) rather than cutting them."""
    table.add_column(header, overflow="fold")


def insights_table(insights: Insights) -> Table:
    """One segment's figures, numbers and shares."""
    table = Table(title=f"Insights — {insights.segment}", show_header=True)
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
        ("orders as of", insights.orders_as_of),
    ]
    text_column(table, "figure")
    number_column(table, "value", [value for _, value in rows])
    for name, value in rows:
        table.add_row(name, value)
    return table


def segments_table(results: Sequence[Insights]) -> Table:
    """Several segments side by side, one column each (a row per segment would need more than
    80 columns for eight large numbers): the figures a marketer compares first."""
    table = Table(title="Sample segments")
    figures: list[tuple[str, list[str]]] = [
        ("customers", [f"{r.customers:,}" for r in results]),
        ("share of all", [f"{r.customers_share:.1%}" for r in results]),
        ("active in the last year", [f"{r.active_customers:,}" for r in results]),
        ("revenue, last year", [f"{r.revenue_1y:,.0f}" for r in results]),
        ("reachable by email", [f"{r.reachable_email:,}" for r in results]),
        ("reachable by SMS", [f"{r.reachable_sms:,}" for r in results]),
        ("average order value", [f"{r.average_order_value:,.2f}" for r in results]),
    ]
    text_column(table, "figure")
    for index, result in enumerate(results):
        number_column(table, result.segment, [cells[index] for _, cells in figures])
    for name, cells in figures:
        table.add_row(name, *cells)
    return table


def breakdown_table(insights: Insights) -> Table:
    """Top values of the breakdown attribute."""
    table = Table(title=f"{insights.segment} by {insights.breakdown_by}")
    rows = [
        (str(row.value), f"{row.customers:,}", f"{row.revenue_1y:,.2f}")
        for row in insights.breakdown or []
    ]
    text_column(table, str(insights.breakdown_by))
    number_column(table, "customers", [r[1] for r in rows])
    number_column(table, "revenue, last year", [r[2] for r in rows])
    for row in rows:
        table.add_row(*row)
    return table


def summary_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    """Rows of dictionaries as a table of the given columns; columns holding only numbers are
    number columns."""
    table = Table(title=title)
    cells = [[_cell(row.get(name)) for name in columns] for row in rows]
    for index, name in enumerate(columns):
        values = [row.get(name) for row in rows]
        if any(v is not None for v in values) and all(_is_number(v) for v in values):
            number_column(table, name, [line[index] for line in cells])
        else:
            text_column(table, name)
    for line in cells:
        table.add_row(*line)
    return table


def arrow_table(title: str, data: pa.Table, width: int) -> Table:
    """An Arrow table (a preview) as a Rich table; when its numbers cannot all fit in `width`
    columns side by side, one block of `column  value` lines per row instead."""
    rows = data.to_pylist()
    wide = summary_table(title, rows, data.column_names)
    # the narrowest `wide` can be: numbers whole, text folded to one character, and each
    # column's padding (2) and left border (1), plus the right edge
    narrowest = 1 + sum((column.width or 1) + 3 for column in wide.columns)
    if narrowest <= width:
        return wide
    table = Table(title=title)
    text_column(table, "column")
    number_column(table, "value", [_cell(v) for row in rows for v in row.values() if _is_number(v)])
    for index, row in enumerate(rows):
        if index:
            table.add_section()
        for name, value in row.items():
            table.add_row(name, _cell(value))
    return table


def changes_table(changes: Sequence[AppliedChange]) -> Table:
    """What `apply` did with each document."""
    rows = [
        {
            "kind": change.kind,
            "name": change.name,
            "version": change.version,
            "result": "saved" if change.changed else "unchanged",
        }
        for change in changes
    ]
    return summary_table("Applied", rows, ["kind", "name", "version", "result"])


def _is_number(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def results_tables(results: CampaignResults) -> list[Table]:
    """A campaign's results: what each group bought, then each treatment against its control
    (why a figure is missing underneath)."""
    since = results.measured_from.date().isoformat() if results.measured_from else "—"
    runs = f"{results.runs} run" + ("" if results.runs == 1 else "s")
    figures = summary_table(
        f"Results — {results.campaign}",
        [
            {
                "group": _group_label(g.sub_audience, g.group),
                "recipients": g.recipients,
                "buyers": g.purchasers,
                "conversion": _percent(g.conversion_rate),
                "revenue": g.revenue,
                "per recipient": g.revenue_per_recipient,
                "per order": g.average_order_value,
            }
            for g in results.groups
        ],
        ["group", "recipients", "buyers", "conversion", "revenue", "per recipient", "per order"],
    )
    figures.caption = (
        f"{runs}; each customer over {results.window_days:g} days from their first run "
        f"(from {since}), as of {results.as_of:%Y-%m-%d %H:%M} UTC"
    )
    rows, notes = [], []
    for g in results.groups:
        versus = g.versus_control
        if versus is None:
            continue
        label = _group_label(g.sub_audience, g.group)
        rows.append(
            {
                "treatment": label,
                "verdict": versus.verdict,
                "conversion vs control": interval_text(versus.incremental_conversion, percent=True),
                "lift": interval_text(versus.lift, percent=True),
                "revenue per recipient vs control": interval_text(
                    versus.incremental_revenue_per_recipient
                ),
            }
        )
        if versus.reason:
            notes.append(f"{label}: {versus.reason}")
    comparison = summary_table(
        f"Against control ({results.confidence:.0%} intervals)",
        rows,
        [
            "treatment",
            "verdict",
            "conversion vs control",
            "lift",
            "revenue per recipient vs control",
        ],
    )
    comparison.caption = "\n".join(notes) or None
    return [figures, comparison]


def _group_label(sub_audience: str, group: str) -> str:
    from audience.definitions.campaign import REMAINING  # here: --help needs no pydantic

    # the control group's name says what it is ("Control"): treatments may not take it
    return group if sub_audience == REMAINING else f"{sub_audience} · {group}"


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.2%}"


def interval_text(figure: Estimate | None, *, percent: bool = False) -> str:
    """An estimate and its interval: `+2.1% (-7.1% to +6.8%)`."""
    if figure is None:
        return "—"
    spec = "+.1%" if percent else "+,.2f"
    return f"{figure.estimate:{spec}} ({figure.low:{spec}} to {figure.high:{spec}})"
