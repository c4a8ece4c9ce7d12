"""`audience --help` answers at once: starting the CLI imports no database driver, AWS SDK,
Arrow or ORM (DESIGN §2); commands import them when they run."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("duckdb", "psycopg", "pyarrow", "sqlalchemy", "boto3", "sqlglot", "alembic")


def test_starting_the_cli_imports_no_heavy_library() -> None:
    probe = (
        "import sys; import audience.cli.main; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_the_python_api_is_the_workspace_loaded_when_asked_for() -> None:
    probe = (
        "import sys; import audience; light = 'audience.workspace' not in sys.modules; "
        "from audience import Workspace; from audience.workspace import Workspace as W; "
        "print(light, Workspace is W)"
    )
    printed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == "True True"
