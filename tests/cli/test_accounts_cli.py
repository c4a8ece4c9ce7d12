"""`audience user|token|secret|audit` through the CLI: passwords and secret values come in on
standard input and never go out; each mistake is one line and exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audience.cli.main import app
from audience.settings import SETTINGS_FILE, render_settings
from audience.store.secrets import new_key

runner = CliRunner()
PASSWORD = "correct horse battery staple"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    monkeypatch.setenv("AUDIENCE__SECRETS__KEY", new_key())
    return tmp_path


def audience(workspace: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "-w", str(workspace)], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_users_and_tokens(workspace: Path) -> None:
    code, printed, _ = audience(
        workspace, "user", "add", "alice", "--role", "editor", "--password-stdin", stdin=PASSWORD
    )
    assert code == 0 and "Added user 'alice' (editor)" in printed
    code, printed, _ = audience(workspace, "token", "create", "alice", "--expires", "30d", "--json")
    issued = json.loads(printed)
    assert code == 0 and issued["token"].startswith("aud_") and issued["state"] == "active"
    code, printed, _ = audience(workspace, "token", "list", "--json")
    (listed,) = json.loads(printed)
    assert "token" not in listed and listed["id"] == issued["id"]
    assert issued["token"] not in printed
    assert audience(workspace, "token", "revoke", issued["id"])[0] == 0
    code, printed, _ = audience(workspace, "token", "list", "--json")
    assert json.loads(printed)[0]["state"] == "revoked"
    code, printed, _ = audience(workspace, "user", "list", "--json")
    assert json.loads(printed) == [
        {
            "name": "alice",
            "role": "editor",
            "created_at": json.loads(printed)[0]["created_at"],
            "has_password": True,
        }
    ]
    assert audience(workspace, "user", "remove", "alice")[0] == 0
    assert json.loads(audience(workspace, "user", "list", "--json")[1]) == []
    code, printed, _ = audience(workspace, "audit", "--json")
    actions = [entry["action"] for entry in json.loads(printed)]
    assert actions == ["user.remove", "token.revoke", "token.create", "user.add"]
    assert PASSWORD not in printed


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("user", "add", "bob", "--role", "boss", "--no-password"), None, "role: unknown role"),
        (("user", "add", "bob", "--password-stdin"), "short", "password: a password has at"),
        (("user", "remove", "nobody"), None, "user 'nobody' does not exist"),
        (("token", "create", "nobody"), None, "user 'nobody' does not exist"),
        (("token", "revoke", "ffffffff"), None, "token 'ffffffff' does not exist"),
        (("secret", "set", "1bad", "--stdin"), "v", "name: a secret's name starts"),
        (("secret", "set", "empty", "--stdin"), "", "value: a secret cannot be empty"),
        (("secret", "rm", "nothing"), None, "secret 'nothing' does not exist"),
    ],
)
def test_mistakes_are_one_line(
    workspace: Path, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, printed, errors = audience(workspace, *args, stdin=stdin)
    assert code == 1 and printed == ""
    assert errors.startswith("error: ") and message in errors
    assert errors.count("\n") == 1


def test_secrets_go_in_and_never_come_out(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, printed, _ = audience(workspace, "secret", "set", "sftp.password", stdin="pa55-w0rd\n")
    assert code == 0 and printed == "Stored secret 'sftp.password'\n"
    code, printed, _ = audience(workspace, "secret", "set", "sftp.password", stdin="pa55-w1rd")
    assert code == 0 and printed.startswith("Replaced")
    code, printed, _ = audience(workspace, "secret", "list", "--json")
    (listed,) = json.loads(printed)
    assert listed["name"] == "sftp.password" and "pa55" not in printed
    database = (workspace / ".audience" / "state.db").read_bytes()
    assert b"pa55" not in database
    # Rotation: a new key in front of the old one, then the old one dropped.
    import os

    old = os.environ["AUDIENCE__SECRETS__KEY"]
    monkeypatch.setenv("AUDIENCE__SECRETS__KEY", f"{new_key()},{old}")
    code, printed, _ = audience(workspace, "secret", "rotate")
    assert code == 0 and "Re-encrypted 1 secret with the newest key" in printed
    monkeypatch.setenv("AUDIENCE__SECRETS__KEY", old)
    code, _, errors = audience(workspace, "secret", "rotate")
    assert code == 1 and "cannot be opened with the secret key set" in errors
    monkeypatch.delenv("AUDIENCE__SECRETS__KEY")
    code, _, errors = audience(workspace, "secret", "set", "x", "--stdin", stdin="v")
    assert code == 1 and "no secret key is set" in errors
    assert audience(workspace, "secret", "list")[0] == 0  # listing needs no key
    actions = [e["action"] for e in json.loads(audience(workspace, "audit", "--json")[1])]
    assert actions == ["secret.rotate", "secret.set", "secret.set"]


def test_a_secret_key_in_the_settings_file_is_refused(workspace: Path) -> None:
    settings = workspace / SETTINGS_FILE
    settings.write_text(settings.read_text() + f'\n[secrets]\nkey = "{new_key()}"\n')
    code, _, errors = audience(workspace, "secret", "list")
    assert code == 1 and "secrets.key: the secret key never sits in audience.toml" in errors


def test_a_key_file_goes_in_whole_and_far_expiries_are_refused(workspace: Path) -> None:
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    assert audience(workspace, "secret", "set", "sftp.key", "--stdin", stdin=key)[0] == 0
    from audience.workspace import Workspace

    with Workspace.open(workspace) as ws:
        assert ws.secrets.value("sftp.key") == key.removesuffix("\n")
    audience(workspace, "user", "add", "ada", "--role", "admin", "--no-password")
    code, _, errors = audience(workspace, "token", "create", "ada", "--expires", "99999999d")
    assert code == 2 and "calendar" in errors and "--expires" in errors
    code, _, errors = audience(workspace, "user", "remove", "ada")
    assert code == 1 and "'ada' is the only admin" in errors
    code, _, errors = audience(workspace, "token", "create", "ada", "--label", "x" * 201)
    assert code == 1 and "label:" in errors
    code, _, errors = audience(workspace, "user", "add", "bo", "--password-stdin", stdin=" " * 12)
    assert code == 1 and "password:" in errors


def test_roles_and_passwords_change_from_the_cli(workspace: Path) -> None:
    audience(workspace, "user", "add", "ada", "--role", "admin", "--no-password")
    audience(workspace, "user", "add", "bob", "--no-password")
    code, _, error = audience(workspace, "user", "role", "ada", "viewer")
    assert code == 1 and "'ada' is the only admin" in error and len(error.strip().splitlines()) == 1
    code, printed, _ = audience(workspace, "user", "role", "bob", "editor", "--json")
    assert code == 0 and json.loads(printed)["role"] == "editor"
    code, printed, _ = audience(
        workspace, "user", "password", "bob", "--password-stdin", stdin=PASSWORD
    )
    assert code == 0 and "Password of 'bob' set" in printed
    users = {u["name"]: u for u in json.loads(audience(workspace, "user", "list", "--json")[1])}
    assert users["bob"]["has_password"] and not users["ada"]["has_password"]
    code, _, error = audience(workspace, "user", "password", "bob", "--password-stdin", stdin="x")
    assert code == 1 and "12" in error
