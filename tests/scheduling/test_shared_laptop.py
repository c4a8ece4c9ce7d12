"""The embedded default with a worker running: `audience worker` in one process, commands in
others, one DuckDB file — no lock errors; the worker stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audience.definitions.loader import validate_data
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace

GOLD = {
    "kind": "segment",
    "name": "Gold",
    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
}


def audience(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from audience.cli.main import main; main()", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_commands_work_beside_a_running_worker(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    out = ws.directory / "out"
    destination = {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": str(out)},
        "file": {"format": "csv", "filename": "{{ campaign_name }}_{{ group_name }}"},
        "default_attributes": ["amperity_id", "email"],
    }
    campaigns = [
        {
            "kind": "campaign",
            "name": f"Now {n}",
            "audience": {"include": ["Gold"]},
            "treatments": [{"name": "A", "percent": 100, "destinations": ["out"]}],
        }
        for n in range(3)
    ]
    ws.apply_documents([validate_data(d) for d in (GOLD, destination, *campaigns)])
    ws.close()
    worker = audience("worker", "-w", ws.directory, env={"AUDIENCE__WORKER__POLL_SECONDS": "0.2"})
    try:
        for campaign in campaigns:
            scheduled = audience("campaign", "schedule", campaign["name"], "-w", ws.directory)
            assert scheduled.wait(60) == 0, scheduled.communicate()
        # While the worker sends them, commands that read the customer database take turns.
        for command in (("campaign", "plan", "Now 0"), ("segment", "insights", "Gold")):
            shown = audience(*command, "-w", ws.directory)
            assert shown.wait(120) == 0, shown.communicate()
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.csv"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # waiting on another process's work, not on simulated time
        assert sorted(p.name for p in out.glob("*.csv")) == [f"Now_{n}_A.csv" for n in range(3)]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert err.count("succeeded") == 3 and "error" not in err.lower()
