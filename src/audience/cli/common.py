"""What every command shares: the workspace option, output helpers, the error boundary."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

# Typer vendors Click; its groups take these
from typer._click.core import Command, Context
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup, TyperOption

from audience.errors import AudienceError

if TYPE_CHECKING:
    from audience.workspace import Workspace

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

WorkspaceOption = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="AUDIENCE_WORKSPACE",
        help="Workspace folder (default: $AUDIENCE_WORKSPACE, then the current folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def typed_name(value: str) -> str:
    """A name as typed, in Unicode NFC as names are kept: a terminal may send "é" as "e" and a
    combining accent."""
    from audience.definitions.names import nfc  # pydantic with it: not at start-up

    return nfc(value)


def typed_names(values: list[str]) -> list[str]:
    """Names as typed, each in NFC (`typed_name`)."""
    return [typed_name(value) for value in values]


def parse_now(text: str) -> datetime:
    """`--now` in any ISO 8601 form the tool itself prints: a bare date, fractional seconds, an
    offset or `Z`; a usage error (exit 2) naming --now otherwise."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T15:30:00Z"
        ) from None


NowOption = Annotated[
    datetime | None,
    typer.Option(
        "--now",
        help="Evaluate as if it were this moment (ISO 8601; UTC when no offset is given).",
        parser=parse_now,
        metavar="ISO-8601",
    ),
]


def _hide_flag_types(command: Command, ctx: Context) -> None:
    """A flag takes no value, so --help shows no `<bool>` beside it."""
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""


class AudienceGroup(TyperGroup):
    """Turns every AudienceError into one red line and exit code 1; usage errors keep code 2."""

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types(command, ctx)
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        _hide_flag_types(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except AudienceError as exc:
            fail(str(exc))
        except Exception as exc:  # a bug: still one line, the traceback on request
            if os.environ.get("AUDIENCE_DEBUG"):
                raise
            fail(f"internal error ({type(exc).__name__}): {exc}; set AUDIENCE_DEBUG=1 for details")


def fail(message: str) -> None:
    """Print one red line and exit with code 1."""
    err.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", soft_wrap=True)
    raise typer.Exit(1)


def _notice(message: str) -> None:
    err.print(f"[yellow]{escape(message)}…[/yellow]")


@contextmanager
def open_workspace(
    directory: Path, clock: Callable[[], datetime] | None = None
) -> Iterator[Workspace]:
    """The workspace in `directory` (on `clock` when given: `--now`), closed afterwards."""
    # Imported here: `audience --help` must not pay for the engines, the store and Arrow.
    from audience.workspace import Workspace

    opened = (
        Workspace.open(directory, notify=_notice)
        if clock is None
        else Workspace.open(directory, clock, notify=_notice)
    )
    opened.actor = cli_actor()
    with opened as workspace:
        yield workspace


def cli_actor() -> str:
    """Who the audit log says did what a command does: the operating-system user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container's)
        return f"cli:uid-{os.getuid()}"


def read_secret_input(prompt: str, *, from_stdin: bool, confirm: bool = False) -> str:
    """A password or secret: all of standard input when asked (for scripts; a key file's many
    lines included, less the final line break), else typed at a hidden prompt. Never an
    argument, which would sit in the shell's history and in the process list."""
    import sys

    if from_stdin or not sys.stdin.isatty():
        text = sys.stdin.read()
        return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


def as_utc(moment: datetime | None) -> datetime | None:
    """`--now` in UTC (without an offset it is UTC already): stored times are all UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows of dictionaries (the same keys each) as a CSV file with a header; a file that
    cannot be written is the user's error, named."""
    import csv

    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
