"""Campaign results: Audience against a hand-written DuckDB query summing the same figures.

A campaign of a tenth of the profiles (New York; 45/45/10) is sent once, 40 days before the
sample's today, to a local folder (not timed); at 10M profiles that is 1M recipients over
50M orders, the figure of the results issue. Its results over a 30-day window are then timed
the whole way through `ws.results.campaign` (definitions, store lookups, the engine query and the
intervals) against one hand-written query that knows the single run: the window's orders summed
per customer, joined to the run's ledger rows, summed per group. Both sides must give the same
recipients, purchasers, orders and revenue per group. Best of `repeat` runs after a warm-up.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta

from rich.table import Table

from audience.definitions.loader import load_text
from audience.workspace import Workspace
from bench.insights import best_of

WINDOW = timedelta(days=30)
SENT_DAYS_AGO = 40
DEFINITIONS = """\
kind: destination
name: bench-results-folder
type: filesystem
settings: {path: "FOLDER"}
file: {format: csv, header: true}
default_attributes: [amperity_id, email]
---
kind: segment
name: New Yorkers
where: {attribute: state, op: "=", value: NY}
---
kind: campaign
name: Measured
audience: {include: [New Yorkers]}
treatments:
  - {name: A, percent: 45, destinations: [bench-results-folder]}
  - {name: B, percent: 45, destinations: [bench-results-folder]}
control: 10
"""
HAND_WRITTEN = """\
with bought as (
    select cast(amperity_id as varchar) as customer_id, count(*) as orders,
        sum(order_revenue) as revenue
    from unified_transactions
    where order_datetime >= $start and order_datetime < $end
        and not coalesce(is_return, false) and not coalesce(is_cancellation, false)
    group by 1
), members as (
    select distinct customer_id, sub_audience, treatment, is_control
    from audience_recipients where run_id = $run
)
select m.sub_audience, m.treatment, m.is_control, count(*) as recipients,
    count(b.customer_id) as purchasers, coalesce(sum(b.orders), 0) as orders,
    coalesce(sum(b.revenue), 0) as revenue, sum(coalesce(b.revenue, 0) ^ 2) as revenue_squares
from members m left join bought b using (customer_id)
group by all
"""


def run(ws: Workspace, profiles: int, repeat: int) -> Table:
    """Send the measured campaign, then time its results both ways; one table."""
    connection = getattr(ws.engine, "connection")  # noqa: B009 - the DuckDB engine's own
    now = ws.clock()
    sent_at = now - timedelta(days=SENT_DAYS_AGO)
    as_of = sent_at + WINDOW
    with tempfile.TemporaryDirectory() as scratch:
        ws.apply_documents(load_text(DEFINITIONS.replace("FOLDER", scratch)))
        sent = ws.campaign_run("Measured", now=sent_at)
        if sent.status != "succeeded":
            raise SystemExit(f"Measured: {sent.error}")
    orders = connection.execute("select count(*) from unified_transactions").fetchone()[0]

    def ours() -> dict[tuple[str, bool], tuple[int, int, int, float]]:
        results = ws.results.campaign("Measured", window=WINDOW, as_of=as_of)
        return {
            (g.group, g.is_control): (g.recipients, g.purchasers, g.orders, round(g.revenue, 2))
            for g in results.groups
        }

    # Literals, as a hand-written script has them (DuckDB plans a parameter less well).
    query = (
        HAND_WRITTEN.replace("$start", f"timestamp '{sent_at:%Y-%m-%d %H:%M:%S.%f}'")
        .replace("$end", f"timestamp '{as_of:%Y-%m-%d %H:%M:%S.%f}'")
        .replace("$run", f"'{sent.id}'")
    )

    def theirs() -> dict[tuple[str, bool], tuple[int, int, int, float]]:
        rows = connection.execute(query).fetchall()
        return {
            (treatment or "Control", bool(control)): (
                recipients,
                purchasers,
                orders,
                round(float(revenue), 2),
            )
            for _, treatment, control, recipients, purchasers, orders, revenue, _ in rows
        }

    our_time, our_figures = best_of(repeat, ours)
    their_time, their_figures = best_of(repeat, theirs)
    if our_figures != their_figures:
        raise SystemExit(f"results differ: Audience {our_figures}, hand-written {their_figures}")
    recipients = sum(figures[0] for figures in our_figures.values())
    table = Table(title=f"Campaign results — {profiles:,} profiles, {orders:,} orders")
    for column in ("request", "recipients", "Audience s", "SQL s", "ratio"):
        table.add_column(column, justify="left" if column == "request" else "right")
    table.add_row(
        "results, 30-day window",
        f"{recipients:,}",
        f"{our_time:.2f}",
        f"{their_time:.2f}",
        f"{our_time / their_time:.2f}",
    )
    return table
