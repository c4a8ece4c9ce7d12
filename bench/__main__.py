"""`make bench`: generate the sample once, then run every benchmark and print its table; then
the runtime under load (`bench/runtime.py`, on PostgreSQL). `python -m bench runtime` runs that
one alone; `python -m bench insights` the sample and the segment insights' table alone;
`python -m bench campaign` the sample and the campaign delivery's table alone;
`python -m bench process` the sample and the whole processes' table (start-up, `campaign run`)
alone;
`python -m bench orchestration` the sample and the orchestrations' table alone;
`python -m bench results` (or `journey`, `api`, `ui`) the sample and the campaign results' (or the
journeys', or the REST API's) table alone.

BENCH_PROFILES (default 1,000,000) sets the size; BENCH_REPEAT (default 5) how many timed runs
each insights query gets; BENCH_MEMORY_LIMIT (e.g. 1GB; default: DuckDB's own, 80 % of RAM) caps
DuckDB's memory while the benchmarks run (not while generating), the same for Audience and the
hand-written SQL. BENCH_ENGINE=spark runs, on the same sample, the campaigns on DuckDB and on
Spark's local mode stage by stage instead (`bench/engines.py`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from audience.settings import EngineSettings, Settings
from audience.workspace import Workspace
from bench import (
    api,
    campaign,
    engines,
    insights,
    journey,
    orchestration,
    process,
    results,
    runtime,
    ui,
)


def main() -> None:
    """Run the sample's benchmarks, then the runtime's; with an argument (`runtime`,
    `insights`, `campaign`, `process`, `orchestration`, `results`, `journey`, `api`, `ui`)
    only that one."""
    console = Console()
    only = sys.argv[1:2]
    if only != ["runtime"]:
        sample(console, only=only[0] if only else None)
    if only in ([], ["runtime"]) and os.environ.get("BENCH_ENGINE") != "spark":
        console.print(runtime.run(console))


def sample(console: Console, *, only: str | None = None) -> None:
    """The insights, campaign, results and orchestration benchmarks on one generated sample
    (`only`: just the one named)."""
    profiles = int(os.environ.get("BENCH_PROFILES", "1000000"))
    repeat = int(os.environ.get("BENCH_REPEAT", "5"))
    now = datetime.now(UTC)
    limit = os.environ.get("BENCH_MEMORY_LIMIT") or None
    with tempfile.TemporaryDirectory(prefix="audience-bench-") as folder:
        settings = Settings(engine=EngineSettings(type="duckdb", path="bench.duckdb"))
        with Workspace(Path(folder), settings, clock=lambda: now) as ws:
            start = time.perf_counter()
            ws.load_sample(profiles=profiles, seed=1)
            console.print(f"Generated {profiles:,} profiles in {time.perf_counter() - start:.1f} s")
        limited = EngineSettings(type="duckdb", path="bench.duckdb", memory_limit=limit)
        with Workspace(Path(folder), Settings(engine=limited), clock=lambda: now) as ws:
            console.print(f"DuckDB memory limit while measuring: {limit or 'DuckDB default'}")
            if os.environ.get("BENCH_ENGINE") == "spark":
                console.print(engines.run(ws, Path(folder), profiles))
                return
            if only in (None, "insights"):
                console.print(insights.run(ws, profiles, repeat))
            if only in (None, "campaign"):
                console.print(campaign.run(ws, profiles))
            if only in (None, "results"):
                console.print(results.run(ws, profiles, repeat))
            if only in (None, "journey"):
                console.print(journey.run(ws, profiles))
        # Whole processes of their own: the database is closed here first.
        if only in (None, "process"):
            console.print(process.run(Path(folder), Path(folder) / "bench.duckdb", profiles))
        if only in (None, "orchestration"):
            console.print(orchestration.run(Path(folder), Path(folder) / "bench.duckdb", profiles))
        if only in (None, "api"):
            console.print(api.run(Path(folder), Path(folder) / "bench.duckdb", profiles))
        if only in (None, "ui"):
            console.print(ui.run(Path(folder), Path(folder) / "bench.duckdb", profiles))


if __name__ == "__main__":
    main()
