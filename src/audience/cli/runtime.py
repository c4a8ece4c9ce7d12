"""The runtime from the terminal: `audience status`, `audience worker`, `audience runs …`, and
`audience campaign schedule|pause|resume|cancel`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer._click.core import Context

from audience.cli.campaigns import RunProgress, print_run
from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    NowOption,
    WorkspaceOption,
    as_utc,
    err,
    open_workspace,
    out,
    print_json,
    typed_name,
)
from audience.cli.render import summary_table

if TYPE_CHECKING:
    from audience.activation.lifecycle import ActivationStatus
    from audience.store.runs import Run

HERE = Path(".")
RunIdArgument = Annotated[
    str, typer.Argument(help="The run's id (or its first 12 characters, as `runs` shows).")
]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind", help="Only activations of this kind (campaign, journey, orchestration)."
    ),
]


def print_statuses(statuses: list[ActivationStatus], as_json: bool) -> None:
    """The Activations page: as JSON, or as a table."""
    if as_json:
        print_json([s.to_json() for s in statuses])
        return
    rows = [
        {
            "kind": s.kind,
            "name": s.name,
            "status": s.status,
            "schedule": s.schedule,
            "next due": _when(s.next_due),
            "last run": "—"
            if s.last_run is None
            else f"{_when(s.last_run.scheduled_for)} {s.last_run.status}",
            "launch": s.launch_date.isoformat() if s.launch_date else "—",
        }
        for s in statuses
    ]
    columns = ["kind", "name", "status", "schedule", "next due", "last run", "launch"]
    out.print(summary_table("Activations", rows, columns))


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.isoformat(timespec="minutes")


def status(
    kind: KindOption = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Every activation with its status, schedule in words, next due time and last run."""
    with simulated_workspace(workspace, now) as ws:
        statuses = ws.activations.status(kind)
    print_statuses(statuses, as_json)


def simulated_workspace(directory: Path, now: datetime | None) -> Any:
    """The workspace, its clock stopped at `now` when given (a simulated moment)."""
    moment = as_utc(now)
    return open_workspace(directory, clock=None if moment is None else lambda: moment)


def lifecycle_command(kind: str, verb: str, summary: str) -> Any:
    """A `<kind> <verb> NAME` command that changes an activation's schedule state."""

    def command(
        name: str,
        workspace: WorkspaceOption = HERE,
        as_json: JsonOption = False,
        now: NowOption = None,
    ) -> None:
        with simulated_workspace(workspace, now) as ws:
            changed = getattr(ws.activations, verb)(kind, name)
        if as_json:
            print_json(changed.to_json())
        else:
            due = f", next due {_when(changed.next_due)}" if changed.next_due else ""
            out.print(
                f"{kind.capitalize()} {escape(name)!r} is {changed.status}: {changed.schedule}{due}"
            )

    command.__doc__ = summary
    # Annotations are strings here (postponed evaluation): this one names the kind itself.
    command.__annotations__["name"] = Annotated[
        str, typer.Argument(help=f"The {kind}'s name.", show_default=False, callback=typed_name)
    ]
    return command


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Runs at the same time.")
    ] = 1,
    workspace: WorkspaceOption = HERE,
    now: NowOption = None,
) -> None:
    """Run activations when they are due: queue what schedules owe, claim it, send it.

    Several workers (processes or --concurrency) share the work safely; stop with Ctrl-C."""
    from audience.scheduling.worker import Worker, serve_together

    stop = threading.Event()

    @contextmanager
    def one_worker() -> Iterator[Worker]:
        with simulated_workspace(workspace, now) as ws:
            yield Worker(ws, on_run=_report, on_error=report_worker_error)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        err.print("stopping once the runs under way end…")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupted)
        signal.signal(signal.SIGINT, interrupted)
    serve_together(one_worker, concurrency=concurrency, once=once, stop=stop)


def report_worker_error(error: BaseException) -> None:
    """One red line for what went wrong outside a run (the worker goes on)."""
    err.print(
        f"[red]worker:[/red] {escape(str(error) or type(error).__name__)}; going on",
        soft_wrap=True,
    )


def _report(run: Run) -> None:
    error = f": {run.error}" if run.error else ""
    retry = f" (retry at {_when(run.not_before)})" if run.status == "queued" else ""
    err.print(
        f"{run.activation_kind} {escape(run.activation_name)!r} due "
        f"{_when(run.scheduled_for)}: {run.status}{retry}{escape(error)}",
        soft_wrap=True,
    )


class RunsGroup(AudienceGroup):
    """`audience runs [NAME]` lists runs; `audience runs retry|cancel RUN_ID` acts on one. A
    first word that is not a subcommand is the activation's name."""

    def resolve_command(self, ctx: Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands:
            return None, None, args
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            ctx.meta["audience_runs_name"] = typed_name(args[0])
            args = args[1:]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    cls=RunsGroup,
    help="Runs, newest first: `runs [NAME]`; `runs retry RUN_ID`, `runs cancel RUN_ID`.",
    invoke_without_command=True,
)


@runs_app.callback()
def runs(
    ctx: typer.Context,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first (of one activation when its name is given)."""
    if ctx.invoked_subcommand is not None:
        return
    name = ctx.meta.get("audience_runs_name")
    with open_workspace(workspace) as ws:
        found = ws.runs(name)
    if as_json:
        print_json([r.to_json() for r in found])
        return
    rows = [
        {
            "run": r.id[:12],
            "activation": r.activation_name,
            "scheduled for": r.scheduled_for.isoformat(timespec="minutes"),
            "status": r.status + (" (test)" if r.is_test else ""),
            "sent": r.sent,
            "control": r.counts.get("control", 0),
            "files": len({d.uri for d in r.deliveries if d.role == "data"}),
        }
        for r in found
    ]
    columns = [
        "run",
        "activation",
        "scheduled for",
        "status",
        "sent",
        "control",
        "files",
    ]
    out.print(summary_table("Runs", rows, columns))


@runs_app.command("retry")
def retry(
    run_id: RunIdArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Run a failed (or canceled) run again now, as its next attempt, for the same due time."""
    with simulated_workspace(workspace, now) as ws, RunProgress() as progress:
        result = ws.activations.retry(run_id, progress=progress)
    print_run(result, as_json)


@runs_app.command("cancel")
def cancel(
    run_id: RunIdArgument,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Mark a queued or failed run — or one whose worker died (lease expired) — canceled."""
    with simulated_workspace(workspace, now) as ws:
        canceled = ws.activations.cancel_run(run_id)
    if as_json:
        print_json(canceled.shape().model_dump(mode="json"))
    else:
        run, removed = canceled.run, canceled.leftovers_removed
        cleaned = f"; removed {removed} half-written file{'s' * (removed != 1)}" if removed else ""
        sent = sum(d.role == "data" for d in run.deliveries)
        kept = (
            f"; the files it had published ({sent}) remain at the destination, with no "
            f"recipients recorded: `audience runs retry {run.id}` finishes the run without "
            "sending them again"
            if sent
            else ""
        )
        out.print(f"Run {run.id} canceled{cleaned}{kept}")
