"""`audience campaign …`: plan, test, run (schedule, pause, resume, cancel: `cli/runtime.py`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    NowOption,
    WorkspaceOption,
    as_utc,
    err,
    fail,
    open_workspace,
    out,
    parse_now,
    print_json,
    typed_name,
    write_csv,
)
from audience.cli.render import number_column, results_tables, summary_table, text_column

if TYPE_CHECKING:
    from audience.activation.plan import CampaignPlan
    from audience.store.runs import Run

app = typer.Typer(cls=AudienceGroup, help="Campaigns: plan, test, run.")
NameArgument = Annotated[
    str, typer.Argument(help="The campaign's name.", show_default=False, callback=typed_name)
]
HERE = Path(".")


class RunProgress:
    """Draws a campaign's progress as Rich progress bars (on stderr, so --json stays clean)."""

    def __init__(self) -> None:
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        if err.is_terminal:  # drawn for a person; a script reading stderr gets its lines only
            self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bars.live.is_started:
            self._bars.stop()  # (stopping bars never started prints a blank line)

    def step(self, description: str, total: int | None = None) -> None:
        """Start a new bar."""
        if self._task is not None:
            self._bars.update(self._task, completed=self._bars.tasks[-1].total or 0)
        self._task = self._bars.add_task(description, total=total)

    def advance(self, rows: int) -> None:
        """Move the current bar."""
        if self._task is not None:
            self._bars.advance(self._task, rows)


@app.command()
def plan(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """How many customers land in each sub-audience, treatment and control group — nothing sent."""
    with open_workspace(workspace) as ws:
        result = ws.campaign_plan(name, now=as_utc(now))
    if result.audience == 0:
        _warn_empty(result.campaign, result.newly_qualified_only)
    if as_json:
        print_json(result.to_json())
    else:
        out.print(plan_table(result))


def plan_table(plan: CampaignPlan) -> Table:
    """Customers per sub-audience and group, with exclusions and shrink underneath."""
    table = Table(title=f"Plan — {plan.campaign}", caption=_plan_caption(plan))
    rows = [
        (
            sub.name,
            f"{group.name} (control, not sent)" if group.control else group.name,
            f"{group.customers:,}",
        )
        for sub in plan.sub_audiences
        for group in sub.groups
    ]
    text_column(table, "sub-audience")
    text_column(table, "group")
    number_column(table, "customers", [row[2] for row in rows])
    for row in rows:
        table.add_row(*row)
    return table


def _plan_caption(plan: CampaignPlan) -> str:
    shrink = ", ".join(f"{name} drops {n:,}" for name, n in plan.shrink.items() if n)
    newly = " newly qualified" if plan.newly_qualified_only else ""
    caption = f"audience {plan.audience:,}{newly}; excluded {plan.excluded:,}"
    if plan.unmatched:
        caption += f"; {plan.unmatched:,} match no sub-audience (not sent)"
    return f"{caption}; {shrink}" if shrink else caption


def _warn_empty(campaign: str, newly_qualified_only: bool) -> None:
    what = "nobody newly qualifies for" if newly_qualified_only else "nobody is in the audience of"
    err.print(f"[yellow]warning:[/yellow] {what} campaign {escape(campaign)!r}; no one is sent")


def print_run(run: Run, as_json: bool = False) -> None:
    """A run as JSON or as a summary and a table of its files; exit 1 if it failed."""
    if run.status == "succeeded" and not run.is_test and run.counts.get("audience") == 0:
        _warn_empty(run.activation_name, bool(run.counts.get("newly_qualified_only")))
    if as_json:
        print_json(run.to_json())
    else:
        out.print(_run_line(run))
        if run.deliveries:
            rows = [
                {
                    "group": d.group or "all",
                    "destination": d.destination,
                    "rows": d.rows,
                    "uri": d.uri,
                }
                for d in run.deliveries
                if d.role == "data"
            ]
            out.print(summary_table("Deliveries", rows, ["group", "destination", "rows", "uri"]))
    if run.status != "succeeded":
        fail(run.error or run.status)


def _run_line(run: Run) -> str:
    counts = run.counts
    if run.is_test:
        return (
            f"Test run {run.id} {run.status}: {counts.get('sent', 0):,} records in "
            f"{counts.get('files', 0):,} files (at most {counts.get('records_per_file', 0):,} "
            "each); nothing recorded in the ledger"
        )
    if run.activation_kind == "journey":
        return (
            f"Run {run.id} {run.status}: entered {counts.get('entered', 0):,}, exited "
            f"{counts.get('exited', 0):,}, finished {counts.get('finished', 0):,}; sent "
            f"{counts.get('sent', 0):,} in {counts.get('files', 0):,} files; "
            f"{counts.get('in_journey', 0):,} in the journey"
        )
    if run.activation_kind == "orchestration":
        mark = counts.get("high_water_mark")
        above = f", up to {counts.get('incremental_by', '')} {mark}" if mark is not None else ""
        return (
            f"Run {run.id} {run.status}: sent {counts.get('rows', 0):,} rows in "
            f"{counts.get('files', 0):,} files{above}"
        )
    return (
        f"Run {run.id} {run.status}: sent {counts.get('sent', 0):,}, "
        f"control {counts.get('control', 0):,}"
    )


@app.command()
def run(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Send the campaign to every destination of its treatments: a recurring campaign only its
    newly qualified customers, a one-time campaign its whole audience again."""
    with open_workspace(workspace) as ws, RunProgress() as progress:
        result = ws.campaign_run(name, now=as_utc(now), progress=progress)
    print_run(result, as_json)


@app.command()
def test(
    name: NameArgument,
    records: Annotated[int, typer.Option("--records", min=1, help="Rows per file.")] = 10,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Send a sample of N records per file, named TEST_…, without touching the ledger."""
    with open_workspace(workspace) as ws, RunProgress() as progress:
        result = ws.campaign_run(name, now=as_utc(now), progress=progress, test_records=records)
    print_run(result, as_json)


WindowOption = Annotated[
    str,
    typer.Option("--window", help="How long each customer is measured: 30d, 4w, 72h, or days."),
]


@app.command()
def results(
    name: NameArgument,
    window: WindowOption = "30d",
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            help="Measure as things stood then (ISO 8601; default: now).",
            parser=parse_now,
            metavar="ISO-8601",
        ),
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Also write one row per group to this CSV file.", dir_okay=False
        ),
    ] = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Did it work? Per group: recipients, purchasers, orders, revenue; each treatment against
    its control, with 95 % intervals and a verdict."""
    from audience.activation.results import parse_window

    span = parse_window(window, field="--window")
    with open_workspace(workspace) as ws:
        found = ws.results.campaign(name, window=span, as_of=as_utc(as_of))
    if csv_file is not None:
        write_csv(csv_file, found.csv_rows())
    if as_json:
        print_json(found.model_dump(mode="json"))
    else:
        for table in results_tables(found):
            out.print(table)
