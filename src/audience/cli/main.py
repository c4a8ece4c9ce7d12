"""The `audience` command: thin commands that call Workspace and print through Rich."""

from __future__ import annotations

import atexit
import gc
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from audience.cli import (
    accounts,
    campaigns,
    destinations,
    journeys,
    orchestrations,
    runtime,
    secrets,
    segments,
    serve,
)
from audience.cli.campaigns import RunProgress, plan_table, print_run
from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    WorkspaceOption,
    err,
    open_workspace,
    out,
    print_json,
)
from audience.cli.journeys import print_journey_counts
from audience.cli.render import changes_table, results_tables, segments_table
from audience.demo.samples import (
    SAMPLE_CAMPAIGN,
    SAMPLE_CAMPAIGN_DEFINITIONS,
    SAMPLE_DEFINITIONS,
    SAMPLE_JOURNEY,
    SAMPLE_JOURNEY_DAYS,
    SAMPLE_JOURNEY_DEFINITIONS,
    SAMPLE_PURCHASE_DAYS,
    SAMPLE_PURCHASE_RATES,
    SAMPLE_RESULTS_DAYS,
    SAMPLE_SEGMENTS,
)

app = typer.Typer(
    cls=AudienceGroup,
    help="Audience: segments, campaigns and deliveries from your customer 360.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version  # here: reading metadata costs every start

        typer.echo(f"audience {version('audience')}")
        raise typer.Exit()


@app.callback()
def options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options of `audience` itself, before any command."""


app.add_typer(segments.app, name="segment")
app.add_typer(campaigns.app, name="campaign")
app.add_typer(runtime.runs_app, name="runs")
app.command("status")(runtime.status)
app.command("worker")(runtime.worker)
app.add_typer(journeys.app, name="journey")
app.add_typer(orchestrations.app, name="orchestration")
app.add_typer(destinations.app, name="destination")
app.add_typer(secrets.app, name="secret")
app.add_typer(accounts.users_app, name="user")
app.add_typer(accounts.tokens_app, name="token")
app.command("audit")(accounts.audit)
app.command("serve")(serve.serve)
for kind, group in (("campaign", campaigns.app), ("orchestration", orchestrations.app)):
    for verb, summary in (
        ("schedule", f"Put the {kind} on its schedule, from now (a worker sends it when due)."),
        ("pause", f"Stop starting the {kind}'s runs; a run under way finishes."),
        ("resume", f"Start the {kind}'s runs again; times missed while paused are not caught up."),
        ("cancel", f"Take the {kind} off its schedule; its queued runs are canceled."),
    ):
        group.command(verb)(runtime.lifecycle_command(kind, verb, summary))
for verb, summary in (
    ("pause", "Stop the journey's runs: no one moves, nothing is sent; delays keep counting."),
    ("resume", "Run the journey again; those whose delay passed meanwhile move at its next run."),
):
    journeys.app.command(verb)(runtime.lifecycle_command("journey", verb, summary))
HERE = Path(".")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new workspace.")],
    engine: Annotated[
        str, typer.Option("--engine", help="Where customer data lives: duckdb, postgres or spark.")
    ] = "duckdb",
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="PostgreSQL URL (engine and metadata store)."),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            help="PostgreSQL schema of the customer tables (default: audience, a schema of its "
            "own).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a workspace: a folder with audience.toml."""
    if engine not in {"duckdb", "postgres", "spark"}:
        raise typer.BadParameter("must be duckdb, postgres or spark", param_hint="--engine")
    from audience.workspace import init_workspace

    path = init_workspace(directory, engine, database_url, schema)
    out.print(f"Created {path}")


@app.command()
def demo(
    profiles: Annotated[
        int, typer.Option("--profiles", min=1, help="How many customers.")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 42,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace existing tables of the sample's names even if an earlier demo did "
            "not make them.",
        ),
    ] = False,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Fill the engine with a sample customer 360, show sample segments, send a sample campaign.

    Only the sample tables are written, and only where no table of that name exists or an
    earlier demo made it (unless --replace)."""
    with open_workspace(workspace) as ws:
        with out.status(f"Generating {profiles:,} sample customers…"):
            ws.load_sample(profiles=profiles, seed=seed, replace=replace)
        ws.apply([SAMPLE_DEFINITIONS, SAMPLE_CAMPAIGN_DEFINITIONS, SAMPLE_JOURNEY_DEFINITIONS])
        results = [ws.segment_insights(name) for name in SAMPLE_SEGMENTS]
        plan = ws.campaign_plan(SAMPLE_CAMPAIGN)
        with RunProgress() as progress:
            # Due at this very instant, not this second: the demo sends afresh however soon
            # it is run again (a run by hand refuses a second send for the same second).
            run = ws.campaign_run(SAMPLE_CAMPAIGN, now=ws.clock(), progress=progress)
            # The journey over a few simulated days: one run a day, as its schedule would,
            # after the days an earlier demo simulated (a journey only moves forward in time).
            start = ws.clock()
            ticked = ws.store.runs.latest("journey", SAMPLE_JOURNEY, succeeded=True)
            if ticked is not None and ticked.scheduled_for >= start:
                start = ticked.scheduled_for + timedelta(days=1)
            for day in range(SAMPLE_JOURNEY_DAYS):
                ws.journey_tick(SAMPLE_JOURNEY, now=start + timedelta(days=day), progress=progress)
        journey = ws.journey_counts(SAMPLE_JOURNEY)
        # Last, so nothing above sees them: orders in the weeks after the send, to measure.
        ws.simulate_purchases(run, rates=SAMPLE_PURCHASE_RATES, profiles=profiles, seed=seed)
        measured = ws.results.campaign(
            SAMPLE_CAMPAIGN,
            as_of=(run.ended_at or ws.clock()) + timedelta(days=SAMPLE_RESULTS_DAYS),
        )
    if as_json:
        print_json(
            {
                "profiles": profiles,
                "seed": seed,
                "segments": [r.model_dump(mode="json") for r in results],
                "campaign": {"plan": plan.to_json(), "run": run.to_json()},
                "journey": journey.model_dump(mode="json"),
                "results": measured.model_dump(mode="json"),
            }
        )
        return
    out.print(segments_table(results))
    out.print(plan_table(plan))
    print_run(run)
    print_journey_counts(journey, f"{SAMPLE_JOURNEY} after {SAMPLE_JOURNEY_DAYS} simulated days")
    out.print(
        f"Simulated {SAMPLE_PURCHASE_DAYS} days of purchases after the campaign; its results "
        f"{SAMPLE_RESULTS_DAYS} days on "
        f"(`audience campaign results {SAMPLE_CAMPAIGN!r} --as-of …`):"
    )
    for table in results_tables(measured):
        out.print(table)


@app.command()
def apply(
    files: Annotated[
        list[Path],
        typer.Option("--file", "-f", help="A YAML file or a folder of them; repeat for more."),
    ],
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Validate every document, then save them all as new versions — or nothing at all."""
    from audience.definitions.loader import load_each_path

    found = load_each_path(files)
    for path, documents in found:
        if not documents:
            err.print(
                f"[yellow]warning:[/yellow] {escape(str(path))} holds no YAML documents "
                "(*.yaml, *.yml); nothing applied from it",
                soft_wrap=True,
            )
    with open_workspace(workspace) as ws:
        changes = ws.apply_documents([d for _, documents in found for d in documents])
    if as_json:
        print_json([change.model_dump(mode="json") for change in changes])
    else:
        out.print(changes_table(changes))


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    workspace: WorkspaceOption = HERE,
) -> None:
    """Write every current definition as YAML that `apply` accepts unchanged."""
    with open_workspace(workspace) as ws:
        text = ws.export()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def main() -> None:
    """Entry point of the `audience` script."""
    # sqlglot warns on stderr when it falls back on SQL it cannot parse ("contains unsupported
    # syntax"); Audience refuses such SQL itself, in one line.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    _collect_garbage_rarely()
    app()


def _collect_garbage_rarely() -> None:
    """A command builds a few hundred thousand long-lived objects (modules, classes, validators)
    and frees them all at exit, where the cycle collector walks them again and again: 0.4–0.6 s
    of a 2 s run. Collect cycles less often while it works, and once at exit, then freeze what is
    left so that tearing down the interpreter does not walk it."""
    gc.set_threshold(50_000, 20, 100)

    def collect_once() -> None:
        gc.collect()
        gc.freeze()

    atexit.register(collect_once)
