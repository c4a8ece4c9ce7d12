"""`audience user add|list|remove`, `audience token create|list|revoke`, `audience audit`:
who may use the API and web UI, with which role, and what everyone did."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from audience.cli.common import (
    AudienceGroup,
    JsonOption,
    WorkspaceOption,
    as_utc,
    cli_actor,
    open_workspace,
    out,
    print_json,
    read_secret_input,
    typed_name,
)

users_app = typer.Typer(cls=AudienceGroup, help="Users of the API and web UI, and their roles.")
tokens_app = typer.Typer(cls=AudienceGroup, help="API tokens (Authorization: Bearer …).")
HERE = Path(".")
_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.isoformat(timespec="minutes")


@users_app.command("add")
def add_user(
    name: Annotated[
        str, typer.Argument(help="The user's name (what they sign in with).", callback=typed_name)
    ],
    role: Annotated[
        str, typer.Option("--role", help="viewer (reads), editor (changes), admin (launches).")
    ] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: the user signs in with tokens.")
    ] = False,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Add a user; the password is asked for (hidden), or read from standard input."""
    password = _new_password(no_password=no_password, from_stdin=password_stdin)
    with open_workspace(workspace) as ws:
        user = ws.store.accounts.add_user(name, role, password, actor=cli_actor(), now=ws.clock())
    if as_json:
        print_json(user.to_json())
    else:
        out.print(f"Added user {escape(user.name)!r} ({user.role})")


@users_app.command("list")
def list_users(workspace: WorkspaceOption = HERE, as_json: JsonOption = False) -> None:
    """Every user and their role."""
    with open_workspace(workspace) as ws:
        users = ws.store.accounts.users()
    if as_json:
        print_json([u.to_json() for u in users])
        return
    table = Table("user", "role", "password", "since", title="Users")
    for user in users:
        table.add_row(
            escape(user.name),
            user.role,
            "yes" if user.has_password else "no",
            _when(user.created_at),
        )
    out.print(table)


@users_app.command("remove")
def remove_user(
    name: Annotated[
        str, typer.Argument(help="The user to remove, with their tokens.", callback=typed_name)
    ],
    workspace: WorkspaceOption = HERE,
) -> None:
    """Remove a user; their tokens stop working at once."""
    with open_workspace(workspace) as ws:
        ws.store.accounts.remove_user(name, actor=cli_actor(), now=ws.clock())
    out.print(f"Removed user {escape(name)!r} and their tokens")


@users_app.command("role")
def set_role(
    name: Annotated[str, typer.Argument(help="The user.", callback=typed_name)],
    role: Annotated[str, typer.Argument(help="viewer, editor or admin.")],
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Give a user another role (the only admin keeps theirs)."""
    with open_workspace(workspace) as ws:
        user = ws.store.accounts.set_role(name, role, actor=cli_actor(), now=ws.clock())
    if as_json:
        print_json(user.to_json())
    else:
        out.print(f"{escape(user.name)!r} is now {user.role}")


@users_app.command("password")
def set_password(
    name: Annotated[str, typer.Argument(help="The user.", callback=typed_name)],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Remove it: the user signs in with tokens.")
    ] = False,
    workspace: WorkspaceOption = HERE,
) -> None:
    """Set a user's password (asked for, hidden); their browser sessions end."""
    password = _new_password(no_password=no_password, from_stdin=password_stdin)
    with open_workspace(workspace) as ws:
        ws.store.accounts.set_password(name, password, actor=cli_actor(), now=ws.clock())
    done = "removed" if password is None else "set"
    out.print(f"Password of {escape(name)!r} {done}; their browser sessions have ended")


def _new_password(*, no_password: bool, from_stdin: bool) -> str | None:
    """A new password: none (tokens only), read from standard input, or asked for twice."""
    if no_password:
        return None
    return read_secret_input("Password", from_stdin=from_stdin, confirm=True)


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """`--expires`: a duration from now (`30d`, `12h`, `90m`) or an ISO 8601 time."""
    if text is None:
        return None
    duration = _DURATION.match(text)
    if duration:
        try:
            return now + timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
        except OverflowError:
            raise typer.BadParameter(
                f"{text!r} is further away than a calendar goes", param_hint="--expires"
            ) from None
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (30d, 12h, 90m) nor an ISO 8601 time",
            param_hint="--expires",
        ) from None


@tokens_app.command("create")
def create_token(
    user: Annotated[
        str, typer.Argument(help="Whose token it is: it acts with their role.", callback=typed_name)
    ],
    label: Annotated[str, typer.Option("--label", help="What the token is for.")] = "api",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="When it stops working: 30d, 12h or an ISO 8601 time."),
    ] = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Make an API token. It is printed this once; only its hash is kept."""
    with open_workspace(workspace) as ws:
        now = ws.clock()
        issued = ws.store.accounts.create_token(
            user, label, expires_at=parse_expiry(expires, now), actor=cli_actor(), now=now
        )
    if as_json:
        print_json(issued.shape(now).model_dump(mode="json"))
        return
    out.print(f"Token {issued.token.id} for {escape(user)!r} — shown once, keep it safe:")
    out.print(issued.secret, soft_wrap=True)


@tokens_app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Tokens, newest first: id, owner, label, state; never the tokens themselves."""
    with open_workspace(workspace) as ws:
        now = ws.clock()
        tokens = ws.store.accounts.tokens(user)
    if as_json:
        print_json([t.to_json(now) for t in tokens])
        return
    table = Table("id", "user", "label", "state", "expires", "last used", title="API tokens")
    for token in tokens:
        table.add_row(
            token.id,
            escape(token.user),
            escape(token.label),
            token.state(now),
            _when(token.expires_at),
            _when(token.last_used_at),
        )
    out.print(table)


@tokens_app.command("revoke")
def revoke_token(
    identifier: Annotated[str, typer.Argument(metavar="ID", help="The token's id (token list).")],
    workspace: WorkspaceOption = HERE,
) -> None:
    """Revoke a token: it stops working at once."""
    with open_workspace(workspace) as ws:
        token = ws.store.accounts.revoke_token(identifier, actor=cli_actor(), now=ws.clock())
    out.print(f"Revoked token {token.id} of {escape(token.user)!r}")


def audit(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many entries.")] = 50,
    before: Annotated[
        int | None,
        typer.Option("--before", min=1, max=2**63 - 1, help="Entries older than this id (paging)."),
    ] = None,
    workspace: WorkspaceOption = HERE,
    as_json: JsonOption = False,
) -> None:
    """Who did what, when: newest first."""
    with open_workspace(workspace) as ws:
        entries = ws.store.audit.entries(limit=limit, before=before)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    if not entries:
        out.print("The audit log is empty" if before is None else "No older entries")
        return
    table = Table("id", "at", "who", "did", "to what", title="Audit log")
    for entry in entries:
        table.add_row(
            str(entry.id), _when(entry.at), escape(entry.actor), entry.action, escape(entry.target)
        )
    out.print(table)
