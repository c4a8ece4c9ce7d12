"""The web UI under use: `audience serve` in a process of its own over the bench's sample, a
signed-in browser's requests from this process over loopback HTTP (issue 12).

What a marketer waits for in the segment editor after changing a drop-down: the builder redrawn
(`POST /ui/segments/editor`, with the picklist of the column in use) and then the count and
insights of the segment as edited (`POST /ui/segments/editor/insights`), beside the hand-written
DuckDB insights query for the same segment; and the server-side render time of the main pages.
Median and 95th percentile of 20 requests after a warm-up. Printed, never asserted; issue 12's
targets: a new count within 300 ms of a change (p50) at 1M profiles, pages under 100 ms p50.

`python -m bench ui` generates the sample and prints this table alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from rich.table import Table

from bench.api import _latencies, _workspace, insights_baseline, serving

AUDIENCE = [sys.executable, "-c", "from audience.cli.main import main; main()"]
PASSWORD = "a bench password, long enough"
SEGMENT = "attribute-only"
EDITED = {
    "name": "",
    "mode": "builder",
    "w.match": "all",
    "w.0.type": "attribute",
    "w.0.attribute": "loyalty_tier",
    "w.0.op": "in",
    "w.0.value": "gold, platinum",
    "w.1.type": "attribute",
    "w.1.attribute": "lifetime_revenue",
    "w.1.op": ">",
    "w.1.value": "500",
}
"""The bench's attribute-only segment as the editor's form posts it."""
PAGES = (
    ("Activations page", "/ui/"),
    ("runs", "/ui/runs"),
    ("segments", "/ui/segments"),
    ("destinations", "/ui/destinations"),
    ("campaign builder (before its plan)", "/ui/new/campaign"),
    ("segment editor (before its count)", "/ui/new/segment"),
)


def run(folder: Path, database: Path, profiles: int) -> Table:
    """The editor's requests beside the hand-written insights query, then each page's render."""
    _workspace(folder / "ui", database, PASSWORD)
    baseline = insights_baseline(database)
    table = Table(title=f"Web UI — {profiles:,} profiles, one server process")
    for column in ("request", "p50 ms", "p95 ms", "hand-written SQL p50 ms", "target p50"):
        table.add_column(column, justify="left" if column == "request" else "right")
    with (
        serving(folder / "ui", database) as base,
        httpx.Client(base_url=base, timeout=120) as browser,
    ):
        signed_in = browser.post("/ui/login", data={"name": "bench", "password": PASSWORD})
        if signed_in.status_code != 303:
            raise SystemExit(f"sign-in failed: {signed_in.status_code}")
        form = EDITED | {"csrf_token": browser.cookies["audience_csrf"]}
        headers = {"HX-Request": "true"}

        def redraw() -> None:
            browser.post("/ui/segments/editor", data=form, headers=headers).raise_for_status()

        def count() -> None:
            answer = browser.post("/ui/segments/editor/insights", data=form, headers=headers)
            if 'data-testid="count"' not in answer.raise_for_status().text:
                raise SystemExit("the editor's insights gave no count")

        redrawn, redrawn_95 = _latencies(redraw)
        counted, counted_95 = _latencies(count)
        table.add_row(
            "editor: builder redrawn after a change",
            f"{redrawn:.1f}",
            f"{redrawn_95:.1f}",
            "—",
            "—",
        )
        table.add_row(
            "editor: count and insights",
            f"{counted:.1f}",
            f"{counted_95:.1f}",
            f"{baseline:.1f}",
            "—",
        )
        table.add_row(
            "editor: a change to its new count (both)",
            f"{redrawn + counted:.1f}",
            f"{redrawn_95 + counted_95:.1f}",
            f"{baseline:.1f}",
            "300",
            end_section=True,
        )
        for label, path in PAGES:
            p50, p95 = _latencies(lambda p=path: browser.get(p).raise_for_status())
            table.add_row(f"page: {label}", f"{p50:.1f}", f"{p95:.1f}", "—", "100")
    return table
