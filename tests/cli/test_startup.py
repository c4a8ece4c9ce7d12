"""`audience --help` answers at once: starting the CLI imports no database driver, AWS SDK,
Arrow or ORM (DESIGN §2); commands import them when they run, and only those they use: reading
the metadata store (`status`, `segment list`, `runs`) never loads the engine, Arrow or the
compiler. Time is measured, not asserted: these tests watch what is imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audience.definitions.loader import load_text
from audience.demo.samples import (
    SAMPLE_CAMPAIGN,
    SAMPLE_CAMPAIGN_DEFINITIONS,
    SAMPLE_DEFINITIONS,
    SAMPLE_JOURNEY_DEFINITIONS,
)
from audience.workspace import Workspace, init_workspace
from realservices import fixed_clock

HEAVY = ("duckdb", "psycopg", "pyarrow", "sqlalchemy", "boto3", "sqlglot", "alembic")
NOT_FOR_READING_THE_STORE = (
    "duckdb",
    "psycopg",
    "pyarrow",
    "numpy",
    "sqlglot",
    "boto3",
    "paramiko",
    "httpx",
    "gnupg",
    "alembic",
)
"""What a command that only reads the metadata store has no use for: the engines' drivers, Arrow,
the SQL compiler, the destinations' clients, PGP, and migrations (the store is current)."""

ORCHESTRATION = """
kind: orchestration
name: Loyalty extract
query: select amperity_id, email from customer_360
destination: demo-folder
"""


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


@pytest.fixture(scope="module")
def used_workspace(tmp_path_factory: pytest.TempPathFactory, sample_database: Path) -> Path:
    """A DuckDB workspace as `audience init` makes it, with the sample's definitions, an
    orchestration and a campaign run recorded: its store is current and has rows to show."""
    directory = tmp_path_factory.mktemp("used")
    init_workspace(directory)
    shutil.copy(sample_database, directory / "customer360.duckdb")
    with Workspace.open(directory, clock=fixed_clock) as ws:
        ws.apply([SAMPLE_DEFINITIONS, SAMPLE_CAMPAIGN_DEFINITIONS, SAMPLE_JOURNEY_DEFINITIONS])
        ws.apply_documents(load_text(ORCHESTRATION))
        ws.campaign_run(SAMPLE_CAMPAIGN)
    return directory


def _loaded_by(command: list[str], workspace: Path, watched: tuple[str, ...]) -> tuple[str, list]:
    """Run `audience COMMAND --json` as the script would; its standard output, and which of
    `watched` it had loaded when it finished (the CLI ends by raising SystemExit)."""
    probe = (
        "import json, sys\n"
        "from audience.cli.main import main\n"
        f"sys.argv = ['audience', *{command!r}, '--json', '--workspace', {str(workspace)!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        f"    loaded = [m for m in {watched!r} if m in sys.modules]\n"
        "    print(json.dumps(loaded), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["status"], "Loyalty extract"),
        (["segment", "list"], "Lapsed customers"),
        (["runs"], SAMPLE_CAMPAIGN),
    ],
    ids=["status", "segment list", "runs"],
)
def test_commands_that_read_the_store_import_no_engine_arrow_or_compiler(
    used_workspace: Path, command: list[str], shown: str
) -> None:
    printed, loaded = _loaded_by(command, used_workspace, NOT_FOR_READING_THE_STORE)
    assert shown in json.dumps(json.loads(printed))
    assert loaded == []


def test_a_run_turns_no_python_value_into_arrow_so_pyarrow_loads_no_pandas(
    used_workspace: Path,
) -> None:
    # pyarrow imports pandas (when installed: 0.3 s) the first time a Python value becomes
    # Arrow; a run's constants are built from bytes instead.
    printed, loaded = _loaded_by(
        ["orchestration", "run", "Loyalty extract"], used_workspace, ("pandas",)
    )
    assert json.loads(printed)["status"] == "succeeded"
    assert loaded == []
