"""`audience orchestration …`: preview, run (schedule, pause, resume, cancel: `cli/runtime.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audience.cli.campaigns import RunProgress, print_run
from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    NowOption,
    WorkspaceOption,
    as_utc,
    open_workspace,
    out,
    print_json,
    typed_name,
)
from audience.cli.render import arrow_table

app = typer.Typer(cls=AudienceGroup, help="Orchestrations: a query's result sent to a destination.")
NameArgument = Annotated[
    str, typer.Argument(help="The orchestration's name.", show_default=False, callback=typed_name)
]
HERE = Path(".")


@app.command()
def preview(
    name: NameArgument,
    rows: Annotated[int, typer.Option("--rows", min=1, max=10_000, help="Rows to show.")] = 10,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """The first rows the next run would send, after checking the query is read-only."""
    with open_workspace(workspace) as ws:
        shown = ws.orchestration_preview(name, rows)
    if as_json:
        print_json(shown.shape().model_dump(mode="json"))
        return
    out.print(arrow_table(f"Preview — {name}", shown.table, out.width))
    out.print(f"{shown.total:,} rows in all would be sent")
    if shown.high_water_mark is not None:
        out.print(f"Rows above the last run's high-water mark: {shown.high_water_mark}")


@app.command()
def run(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Run the query now and send its result to the destination."""
    with open_workspace(workspace) as ws, RunProgress() as progress:
        result = ws.run_now("orchestration", name, now=as_utc(now), progress=progress)
    print_run(result, as_json)
