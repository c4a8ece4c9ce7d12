"""Whole processes, as a user meets them (issue 14): how long the everyday commands take to
answer, and a whole `audience campaign run` process against a process doing the same work by
hand.

Start-up: `audience --help`, `audience status` and `audience segment list` in a workspace on the
sample (the bench's segments and campaigns applied; SQLite store), each the best and the median
of five processes, beside `python -c pass` (the interpreter alone). Issue 14's target: ≤ 0.3 s.

Campaign run: `audience campaign run NAME --json` for the narrow and the broad campaign of
`bench/campaign.py`, beside a fresh Python process running the same groups with the same hash in
hand-written DuckDB SQL, `COPY … (COMPRESSION gzip)` and a boto3 upload per file. Each process gets
a fresh moto server (on the same port, which the workspace names). Wall seconds and peak resident
size (GNU time) of the whole process; the rows each side sent must agree. Issue 14's target:
≤ 1.0× at 1M profiles. Printed, never asserted.

`python -m bench process` generates the sample and prints this table alone.
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.table import Table

from audience.definitions.loader import load_text
from audience.settings import SETTINGS_FILE, EngineSettings, Settings, render_settings
from audience.workspace import Workspace
from bench.campaign import BROAD_WHERE, CAMPAIGNS, NARROW_WHERE, SEGMENTS, baseline_sql
from bench.orchestration import AUDIENCE, fresh_s3, measured_process, s3_port_and_environment

STARTS = 5
"""Processes per command; the best and the median are printed."""

BASELINE = """\
import json, sys, boto3, duckdb
database, folder, url, plan = sys.argv[1:5]
plan = json.loads(plan)
connection = duckdb.connect(database)
connection.execute(plan["assign"])
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
rows = 0
for name, low, high in plan["groups"]:
    target = f"{folder}/{name}.csv.gz"
    connection.execute(
        f"copy (select {plan['columns']} from assigned a join merged_customers m "
        f"on m.amperity_id = a.amperity_id where a.bucket >= {low} and a.bucket < {high}"
        f") to '{target}' (header, compression gzip)"
    )
    rows += connection.execute(
        f"select count(*) from assigned where bucket >= {low} and bucket < {high}"
    ).fetchone()[0]
    s3.upload_file(target, "bench", f"baseline/{name}.csv.gz")
print(json.dumps({"rows": rows}))
"""
"""What a data team would run instead: the campaign's groups by the same hash, a gzip CSV per
group by `COPY`, each uploaded with boto3."""


def _plan(campaign: str, where: str, groups: list[tuple[str, int, int]]) -> str:
    """The baseline's SQL for one campaign, as JSON for its process."""
    assign, columns = baseline_sql(where, campaign)
    return json.dumps({"assign": assign, "columns": columns, "groups": groups})


def _workspace(folder: Path, database: Path, url: str) -> Path:
    """A workspace of its own on the bench's DuckDB file, with the campaigns applied."""
    folder.mkdir()
    (folder / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    settings = Settings(engine=EngineSettings(type="duckdb", path=str(database)))
    with Workspace(folder, settings) as ws:
        ws.apply_documents(load_text(SEGMENTS + "---\n" + CAMPAIGNS.replace("ENDPOINT", url)))
    return folder


def run(folder: Path, database: Path, profiles: int) -> Table:
    """Start-up of three commands, then both campaigns as whole processes; one table."""
    port, env = s3_port_and_environment(database)
    url = f"http://127.0.0.1:{port}"
    directory = _workspace(folder / "whole-process", database, url)
    table = Table(title=f"Whole processes — {profiles:,} profiles")
    for column in (
        "process",
        "rows",
        "Audience s",
        "baseline s",
        "ratio",
        "Audience MB",
        "base MB",
    ):
        table.add_column(column, justify="left" if column == "process" else "right")
    interpreter = [
        measured_process([sys.executable, "-c", "pass"], env, folder)[0] for _ in range(STARTS)
    ]
    for command in (["--help"], ["status"], ["segment", "list"]):
        where = [] if command == ["--help"] else ["-w", str(directory)]
        times = [
            measured_process([*AUDIENCE, *command, *where], env, folder)[0] for _ in range(STARTS)
        ]
        table.add_row(
            f"audience {' '.join(command)} (best · median)",
            "",
            f"{min(times):.2f} · {statistics.median(times):.2f}",
            f"{min(interpreter):.2f} (python -c pass)",
            "",
            "",
            "",
        )
    day_120 = f"date '{(datetime.now(UTC).date() - timedelta(days=120)).isoformat()}'"
    cases = (
        ("Narrow", NARROW_WHERE.replace("DAY_120", day_120), [("A", 0, 4500), ("B", 4500, 9000)]),
        ("Broad", BROAD_WHERE, [("All", 0, 10_000)]),
    )
    for name, where, groups in cases:
        scratch = folder / f"baseline-{name}"
        scratch.mkdir()
        baseline = [sys.executable, "-c", BASELINE, str(database), str(scratch), url]
        with fresh_s3(port):
            theirs, their_mb, printed = measured_process(
                [*baseline, _plan(name, where, groups)], env, folder
            )
        with fresh_s3(port):
            ours, our_mb, result = measured_process(
                [*AUDIENCE, "campaign", "run", name, "--json", "-w", str(directory)], env, folder
            )
        files = json.loads(result)["deliveries"]
        sent = sum(d["rows"] for d in files if d["role"] == "data")
        rows = json.loads(printed.strip().splitlines()[-1])["rows"]  # after DuckDB's progress
        if sent != rows:
            raise SystemExit(f"{name}: Audience sent {sent:,} rows, the baseline {rows:,}")
        table.add_row(
            f"campaign run {name}",
            f"{sent:,}",
            f"{ours:.2f}",
            f"{theirs:.2f}",
            f"{ours / theirs:.2f}",
            f"{our_mb:.0f}",
            f"{their_mb:.0f}",
        )
    return table
