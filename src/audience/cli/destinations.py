"""`audience destination test NAME`: can files be delivered there? Nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    WorkspaceOption,
    open_workspace,
    out,
    print_json,
    typed_name,
)

app = typer.Typer(cls=AudienceGroup, help="Destinations: test a connection.")
HERE = Path(".")


@app.command("test")
def test_destination(
    name: Annotated[
        str,
        typer.Argument(help="The destination's name.", show_default=False, callback=typed_name),
    ],
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Connect, log in and check the folder, bucket or prefix can be written; send nothing."""
    with open_workspace(workspace) as ws:
        where = ws.destination_test(name)
    if as_json:
        # here: --help needs no pydantic
        from audience.delivery.destinations.base import DestinationCheck

        checked = DestinationCheck(destination=name, ok=True, address=where)
        print_json(checked.model_dump(mode="json"))
    else:
        out.print(f"Destination {escape(name)!r} is ready: files can be written to {escape(where)}")
