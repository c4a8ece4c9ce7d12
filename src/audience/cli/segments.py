"""`audience segment …`: list, insights, overlap, history, preview, compiled SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    typed_names,
)
from audience.cli.render import arrow_table, breakdown_table, insights_table, summary_table

app = typer.Typer(cls=AudienceGroup, help="Segments: insights, overlap, history, preview, SQL.")
NameArgument = Annotated[
    str, typer.Argument(help="The segment's name.", show_default=False, callback=typed_name)
]
HERE = Path(".")


@app.command("list")
def list_segments(workspace: WorkspaceOption = HERE, as_json: JsonOption = False) -> None:
    """List the segments of the workspace: newest version, its status (active, or a draft
    others do not see yet) and the version campaigns and other segments use."""
    with open_workspace(workspace) as ws:
        rows = [summary.model_dump(mode="json") for summary in ws.segment_summaries()]
    if as_json:
        print_json(rows)
    else:
        columns = ["name", "version", "status", "active_version", "applied_at"]
        out.print(summary_table("Segments", rows, columns))


@app.command()
def insights(
    name: NameArgument,
    by: Annotated[
        str | None, typer.Option("--by", help="Also break the audience down by this attribute.")
    ] = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Compute a segment's insights now (and record them in its history)."""
    with open_workspace(workspace) as ws:
        result = ws.segment_insights(name, by=by, now=as_utc(now))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    out.print(insights_table(result))
    if result.breakdown_by is not None:
        out.print(breakdown_table(result))


@app.command()
def history(
    name: NameArgument, workspace: WorkspaceOption = HERE, as_json: JsonOption = False
) -> None:
    """Every recorded insights refresh of a segment, oldest first."""
    with open_workspace(workspace) as ws:
        refreshes = ws.segment_history(name)
    if as_json:
        print_json([refresh.model_dump(mode="json") for refresh in refreshes])
        return
    columns = [
        "computed_at",
        "version",
        "customers",
        "customers_share",
        "revenue_1y",
        "reachable_email",
    ]
    rows = [refresh.model_dump() for refresh in refreshes]
    out.print(summary_table(f"History — {name}", rows, columns))


@app.command()
def preview(
    name: NameArgument,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many rows.")] = 10,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Show the first members of a segment with their profile columns."""
    with open_workspace(workspace) as ws:
        table = ws.segment_preview(name, limit=limit, now=as_utc(now))
    if as_json:
        from audience.shapes import Rows  # here: --help needs no pydantic

        print_json(Rows.of(table).model_dump(mode="json"))
    else:
        out.print(arrow_table(f"Preview — {name}", table, out.width))


@app.command()
def sql(
    name: NameArgument,
    dialect: Annotated[
        str | None,
        typer.Option("--dialect", help="duckdb, postgres or spark (default: the engine's)."),
    ] = None,
    workspace: WorkspaceOption = HERE,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the SQL a segment compiles to."""
    if dialect is not None and dialect not in {"duckdb", "postgres", "spark"}:
        raise typer.BadParameter("must be duckdb, postgres or spark", param_hint="--dialect")
    with open_workspace(workspace) as ws:
        sql = ws.segment_sql(name, dialect, now=as_utc(now))
    if as_json:
        from audience.shapes import SegmentSql

        print_json(SegmentSql(segment=name, sql=sql).model_dump(mode="json"))
    else:
        typer.echo(sql)


@app.command()
def overlap(
    names: Annotated[
        list[str],
        typer.Argument(
            help="Two to five segments' names.", show_default=False, callback=typed_names
        ),
    ],
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """How two to five segments overlap: customers in each, and in each pair (one query)."""
    with open_workspace(workspace) as ws:
        result = ws.segment_overlap(names, now=as_utc(now))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    rows = [
        {
            "segment": pair.first,
            "and segment": pair.second,
            "in both": pair.both,
            "share of first": _percent(pair.share_of_first),
            "share of second": _percent(pair.share_of_second),
        }
        for pair in result.pairs
    ]
    sizes = ", ".join(f"{name} {count:,}" for name, count in result.customers.items())
    table = summary_table("Overlap", rows, list(rows[0]))
    table.caption = f"customers: {sizes}"
    out.print(table)


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"
