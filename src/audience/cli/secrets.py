"""`audience secret set|list|rm|key|rotate`: credentials kept encrypted in the workspace and
used in destinations as `${secret:NAME}`. Values go in (standard input or a hidden prompt) and
never come out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    WorkspaceOption,
    cli_actor,
    open_workspace,
    out,
    print_json,
    read_secret_input,
)

app = typer.Typer(
    cls=AudienceGroup,
    help="Secrets (destination credentials), encrypted at rest; use them as ${secret:NAME}.",
)
HERE = Path(".")


@app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="The secret's name, as in ${secret:NAME}.")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from standard input.")
    ] = False,
    workspace: WorkspaceOption = HERE,
) -> None:
    """Store a secret (the value is asked for, hidden, or read from standard input)."""
    value = read_secret_input(f"Value of {name}", from_stdin=stdin)
    with open_workspace(workspace) as ws:
        created = ws.secrets.set(name, value, actor=cli_actor(), now=ws.clock())
    out.print(f"{'Stored' if created else 'Replaced'} secret {escape(name)!r}")


@app.command("list")
def list_secrets(workspace: WorkspaceOption = HERE, as_json: JsonOption = False) -> None:
    """The secrets' names and who set them when; never their values."""
    with open_workspace(workspace) as ws:
        secrets = ws.secrets.names()
    if as_json:
        print_json([s.to_json() for s in secrets])
        return
    table = Table("secret", "set at", "by", title="Secrets")
    for secret in secrets:
        table.add_row(
            escape(secret.name),
            secret.updated_at.isoformat(timespec="minutes"),
            escape(secret.updated_by),
        )
    out.print(table)


@app.command("rm")
def remove_secret(
    name: Annotated[str, typer.Argument(help="The secret to delete.")],
    workspace: WorkspaceOption = HERE,
) -> None:
    """Delete a secret; destinations that refer to it fail until it is set again."""
    with open_workspace(workspace) as ws:
        ws.secrets.remove(name, actor=cli_actor(), now=ws.clock())
    out.print(f"Deleted secret {escape(name)!r}")


@app.command("key")
def new_key() -> None:
    """Print a new secret key, for AUDIENCE__SECRETS__KEY or a secrets.key_file."""
    from audience.store.secrets import new_key

    typer.echo(new_key())


@app.command("rotate")
def rotate(workspace: WorkspaceOption = HERE) -> None:
    """Re-encrypt every secret with the first key given (after adding a new key in front of
    the old one); then the old key can be dropped."""
    with open_workspace(workspace) as ws:
        count = ws.secrets.rotate(actor=cli_actor(), now=ws.clock())
    out.print(f"Re-encrypted {count} secret{'s' if count != 1 else ''} with the newest key")
