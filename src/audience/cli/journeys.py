"""`audience journey …`: activate, pause, resume, end, tick, status, path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

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
from audience.cli.render import interval_text, summary_table
from audience.cli.runtime import simulated_workspace

if TYPE_CHECKING:
    from audience.activation.journey import GoalCount, JourneyCounts

app = typer.Typer(
    cls=AudienceGroup, help="Journeys: customers moved along a graph of steps over days."
)
NameArgument = Annotated[
    str, typer.Argument(help="The journey's name.", show_default=False, callback=typed_name)
]
HERE = Path(".")


def _said(name: str, status: str, schedule: str) -> None:
    out.print(f"Journey {escape(name)!r} is {status}: {schedule}")


@app.command()
def activate(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Start the journey on its schedule: a worker admits and moves customers at each run."""
    with simulated_workspace(workspace, now) as ws:
        changed = ws.activations.schedule("journey", name)
    if as_json:
        print_json(changed.to_json())
    else:
        _said(name, changed.status, changed.schedule)


@app.command()
def end(
    name: NameArgument,
    release: Annotated[
        bool,
        typer.Option(
            "--release",
            help="Let everyone inside go now; without it they finish their paths first.",
        ),
    ] = False,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """End the journey: no one is admitted any more."""
    with simulated_workspace(workspace, now) as ws:
        changed = ws.activations.end(name, release=release)
    if as_json:
        print_json(changed.to_json())
    else:
        _said(name, changed.status, "released everyone" if release else "finishing its paths")


@app.command()
def tick(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Run the journey now, or as of --now to simulate its schedule: admit, exit, move, send."""
    with simulated_workspace(workspace, now) as ws, RunProgress() as progress:
        result = ws.journey_tick(name, now=as_utc(now), progress=progress)
    print_run(result, as_json)


@app.command()
def status(
    name: NameArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Customers at each node now and all who entered it; exits by reason; finishes; goals
    (their segments as of --now, by default now)."""
    with open_workspace(workspace) as ws:
        counts = ws.journey_counts(name, now=as_utc(now))
    if as_json:
        print_json(counts.model_dump(mode="json"))
        return
    print_journey_counts(counts, f"Journey — {name}")


def print_journey_counts(counts: JourneyCounts, title: str) -> None:
    """A journey's counts per node, its exits and finishes, and its goals, as tables."""
    rows = [
        {"node": n.node, "type": n.type, "now": n.now, "entered": n.entered} for n in counts.nodes
    ]
    out.print(summary_table(title, rows, ["node", "type", "now", "entered"]))
    exits = ", ".join(f"{reason}: {n:,}" for reason, n in counts.exited.items()) or "none"
    out.print(
        f"In the journey: {counts.in_journey:,}; finished: {counts.finished:,}; "
        f"exited: {exits}; released: {counts.released:,}"
    )
    columns = ["path", "customers", "reached", "conversion", "difference", "lift", "verdict"]
    for goal in dict.fromkeys(g.goal for g in counts.goals):
        # one table per goal, so the rows fit a terminal's width
        rows = [
            {
                "path": g.path or "everyone",
                "customers": g.customers,
                "reached": g.reached,
                "conversion": "—" if g.conversion is None else f"{g.conversion:.1%}",
                "difference": _versus(g, "incremental_conversion"),
                "lift": _versus(g, "lift"),
                "verdict": g.versus_control.verdict if g.versus_control else "",
            }
            for g in counts.goals
            if g.goal == goal
        ]
        table = summary_table(f"Goal — {goal}", rows, columns)
        table.caption = "difference and lift against the path's control, 95 % intervals"
        out.print(table)


def _versus(goal: GoalCount, figure: str) -> str:
    """A figure against the control path with its interval; "—" where there is none."""
    versus = goal.versus_control
    estimate = None if versus is None else getattr(versus, figure)
    return "—" if estimate is None else interval_text(estimate, percent=True)


@app.command()
def path(
    name: NameArgument,
    customer_id: Annotated[str, typer.Argument(help="The customer's id.", show_default=False)],
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """One customer's travel log: each node entered, and how they left."""
    with open_workspace(workspace) as ws:
        steps = ws.journey_path(name, customer_id)
    if as_json:
        print_json([s.model_dump(mode="json") for s in steps])
        return
    if not steps:
        out.print(f"Customer {escape(customer_id)!r} has not entered journey {escape(name)!r}.")
        return
    rows = [
        {
            "at": s.at.isoformat(sep=" "),
            "node": s.node,
            "event": s.event,
            "path": s.path or "",
            "control": "yes" if s.is_control else "",
            "reason": s.reason or "",
        }
        for s in steps
    ]
    out.print(
        summary_table(
            f"{customer_id} in {name}", rows, ["at", "node", "event", "path", "control", "reason"]
        )
    )
