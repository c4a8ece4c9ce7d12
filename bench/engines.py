"""The same campaigns on DuckDB and on Spark (local mode), stage by stage, in one run.

`BENCH_ENGINE=spark make bench`: the sample is generated once in DuckDB and written as Parquet
tables for Spark; then each engine runs the benchmark's narrow and broad campaigns (gzip CSV
files into a folder, so the destination costs both the same) and the time of each stage is
read from the run's progress steps: the assignment query and its snapshot (with the plan's
counts), streaming the files, and writing the recipients ledger. Memory is the Python
process's peak above its start while the run goes (the driver holds batches there), and the
Spark JVM's peak resident size, which local mode's executors share.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from audience.definitions.loader import load_text
from audience.engines.spark import SparkEngine
from audience.settings import EngineSettings, Settings
from audience.workspace import Workspace
from bench.campaign import CAMPAIGNS, SEGMENTS, PeakMemory

FOLDER_DESTINATION = """\
kind: destination
name: bench-s3
type: filesystem
settings: {path: "FOLDER"}
file: {format: csv, compression: gzip, header: true}
default_attributes: ATTRIBUTES
"""
STAGES = ("prepare", "assign", "files", "ledger")


@dataclass
class StageClock:
    """Progress that notes when each step of a campaign run begins, and when rows last came."""

    started: float = field(default_factory=time.perf_counter)
    steps: list[tuple[str, float]] = field(default_factory=list)

    def step(self, description: str, total: int | None = None) -> None:
        del total
        self.steps.append((description, time.perf_counter()))

    def advance(self, rows: int) -> None:
        del rows

    def stages(self, ended: float) -> dict[str, float]:
        """Seconds in each stage: recording the run and reading the ledger before the
        assignment, the assignment to the first file, the files, then the ledger to the end."""
        marks = [t for _, t in self.steps]
        ledger = next(t for d, t in self.steps if d == "Recording recipients")
        return {
            "prepare": marks[0] - self.started,
            "assign": marks[1] - marks[0],
            "files": ledger - marks[1],
            "ledger": ended - ledger,
        }


def spark_workspace(folder: Path, now_of: Workspace, profiles: int) -> tuple[Workspace, float]:
    """A Spark workspace beside the DuckDB one, with the same sample; seconds to write it."""
    settings = EngineSettings(
        type="spark",
        master="local[*]",
        warehouse=str(folder / "spark-warehouse"),
        conf={"spark.ui.enabled": "false"},
        memory_limit="2GB",
    )
    (folder / "spark").mkdir(exist_ok=True)
    ws = Workspace(folder / "spark", Settings(engine=settings), clock=now_of.clock)
    start = time.perf_counter()
    ws.load_sample(profiles=profiles, seed=1)
    return ws, time.perf_counter() - start


def jvm_peak_mb(ws: Workspace) -> float:
    """The Spark JVM's highest resident size so far (local mode: driver and executors)."""
    engine = ws.engine
    assert isinstance(engine, SparkEngine)
    pid = engine.session.sparkContext._gateway.proc.pid  # type: ignore[union-attr]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(duck: Workspace, folder: Path, profiles: int) -> Table:
    """Both campaigns on both engines; one table."""
    spark, loaded = spark_workspace(folder, duck, profiles)
    table = Table(
        title=f"Campaigns on DuckDB and Spark local — {profiles:,} profiles "
        f"(sample written as Parquet in {loaded:.1f} s)"
    )
    for column in ("campaign", "engine", "rows", *(f"{s} s" for s in STAGES), "total s"):
        table.add_column(column, justify="left" if column in ("campaign", "engine") else "right")
    for column in ("rows/s", "Python peak MB", "JVM peak MB"):
        table.add_column(column, justify="right")
    destination = FOLDER_DESTINATION.replace(
        "ATTRIBUTES", CAMPAIGNS.split("default_attributes: ")[1].split("\n")[0]
    )
    campaigns = CAMPAIGNS.split("---\n", 1)[1]
    for engine, ws in (("duckdb", duck), ("spark", spark)):
        out = folder / f"out-{engine}"
        text = SEGMENTS + "---\n" + destination.replace("FOLDER", str(out)) + "---\n" + campaigns
        ws.apply_documents(load_text(text))
        for name in ("Narrow", "Broad"):
            clock = StageClock()
            with PeakMemory() as memory:
                result = ws.campaign_run(name, now=ws.clock(), progress=clock)
                ended = time.perf_counter()
            if result.status != "succeeded":
                raise SystemExit(f"{engine} {name}: {result.error}")
            stages = clock.stages(ended)
            total = ended - clock.started
            sent = sum(d.rows for d in result.deliveries)
            table.add_row(
                name,
                engine,
                f"{sent:,}",
                *(f"{stages[s]:.2f}" for s in STAGES),
                f"{total:.2f}",
                f"{sent / total:,.0f}",
                f"{memory.peak / 2**20:,.0f}",
                f"{jvm_peak_mb(ws):,.0f}" if engine == "spark" else "",
            )
    spark.close()
    return table
