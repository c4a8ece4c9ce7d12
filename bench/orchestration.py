"""Orchestrations, whole process: `audience orchestration run` against DuckDB's own
`COPY (query) TO … (COMPRESSION gzip)` in a process of its own, plus a boto3 upload when the
destination is S3 (moto on loopback) — what a data team would write instead (issue 8).

The query selects ten text columns of the customers in a loyalty tier (about 45 % of the
sample). Both sides start a fresh Python process, so imports, opening the database and writing
count for both. Times are wall seconds of the whole process; peak memory is the process's
maximum resident size, from GNU time (Debian's `time`, which `make bench` installs). Printed,
never asserted; issue 8's target is ≤ 0.5× the COPY + upload baseline.

`python -m bench orchestration` generates the sample and prints this table alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.table import Table

from audience.definitions.loader import validate_data
from audience.settings import SETTINGS_FILE, EngineSettings, Settings, render_settings
from audience.workspace import Workspace
from bench.campaign import moto

QUERY = (
    "select amperity_id, email, given_name, surname, address, address2, city, state, postal, "
    "country from customer_360 where loyalty_tier <> 'none'"
)
AUDIENCE = [sys.executable, "-c", "from audience.cli.main import main; main()"]
BASELINE = """\
import sys, boto3, duckdb
database, target, url = sys.argv[1:4]
connection = duckdb.connect(database, read_only=True)
connection.execute(f"copy ({sys.argv[4]}) to '{target}' (format csv, header, compression gzip)")
connection.close()
if url:
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").upload_file(
        target, "bench", "baseline/extract.csv.gz"
    )
"""


def _child(command: list[str], env: dict[str, str], scratch: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and standard output of one process. The peak comes from
    GNU time around it: a forked child's own rusage would count this big process's pages."""
    out, err = scratch / "stdout", scratch / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "peak-kb %M", *command],
            env=env,
            stdout=stdout,
            stderr=stderr,
            check=False,
        )
        elapsed = time.perf_counter() - start
    lines = err.read_text().strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("peak-kb "):
        raise RuntimeError(f"{command[:3]} failed: {' '.join(lines[-3:])}")
    return elapsed, int(lines[-1].split()[1]) / 1024, out.read_text()


def _workspace(folder: Path, database: Path, url: str | None) -> Path:
    """A workspace of its own on the bench's DuckDB file (`AUDIENCE__ENGINE__PATH` names it
    for the CLI), with the destination and the orchestration applied."""
    folder.mkdir()
    (folder / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    destination = (
        {"type": "s3", "settings": {"bucket": "bench", "prefix": "audience/", "endpoint_url": url}}
        if url
        else {"type": "filesystem", "settings": {"path": "out"}}
    )
    documents = [
        {
            "kind": "destination",
            "name": "extract",
            **destination,
            "file": {"format": "csv", "compression": "gzip", "filename": "{{ run_id }}"},
        },
        {"kind": "orchestration", "name": "Extract", "query": QUERY, "destination": "extract"},
    ]
    settings = Settings(engine=EngineSettings(type="duckdb", path=str(database)))
    with Workspace(folder, settings) as ws:
        ws.apply_documents([validate_data(d) for d in documents])
    return folder


def run(folder: Path, database: Path, profiles: int) -> Table:
    """Audience and the baseline, to a folder and to S3; one table."""
    table = Table(title=f"Orchestration, whole process — {profiles:,} profiles, gzip CSV")
    for column in ("to", "rows", "Audience s", "COPY s", "ratio", "Audience MB", "COPY MB"):
        table.add_column(column, justify="left" if column == "to" else "right")
    with moto() as url:
        env = {
            **os.environ,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AUDIENCE__ENGINE__PATH": str(database),
        }
        for where, endpoint in (("folder", None), ("S3 (moto)", url)):
            name = where.split()[0]
            directory = _workspace(folder / name, database, endpoint)
            target = folder / f"baseline-{name}.csv.gz"
            baseline = [sys.executable, "-c", BASELINE, str(database), str(target)]
            copy_s, copy_mb, _ = _child([*baseline, endpoint or "", QUERY], env, folder)
            ours_s, ours_mb, printed = _child(
                [*AUDIENCE, "orchestration", "run", "Extract", "--json", "-w", str(directory)],
                env,
                folder,
            )
            rows = json.loads(printed)["counts"]["rows"]
            table.add_row(
                where,
                f"{rows:,}",
                f"{ours_s:.2f}",
                f"{copy_s:.2f}",
                f"{ours_s / copy_s:.2f}",
                f"{ours_mb:.0f}",
                f"{copy_mb:.0f}",
            )
    return table
