"""Campaign delivery: Audience against hand-written DuckDB SQL + COPY … gzip, same process.

Two campaigns over the sample (DESIGN §6): a narrow one (a segment of a few percent, one
exclusion, 45/45/10, ten attributes, two gzip CSV files) and a broad one (≈90 % of profiles, one
file), both delivered to S3 (moto on loopback). The baseline computes the same groups with the
same hash, writes each file with DuckDB's COPY … (COMPRESSION gzip) and uploads it with boto3.
Peak memory is the highest resident size seen while each side runs, above where it started.
A third row times a recurring run that finds 10 % newly qualified, against a full run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import EndpointConnectionError
from rich.table import Table
from sqlglot import exp

from audience.compile.assignment import bucket
from audience.definitions.loader import load_text
from audience.workspace import Workspace

ATTRIBUTES = (
    "[amperity_id, email, given_name, surname, address, address2, city, state, postal, country]"
)
SEGMENTS = """\
kind: segment
name: Narrow
where:
  all:
    - {attribute: loyalty_tier, op: in, value: [gold, platinum]}
    - {attribute: last_order_date, op: within_last, value: 120, unit: days}
---
kind: segment
name: Broad
where: {attribute: lifetime_order_count, op: ">=", value: 0}
---
kind: segment
name: Opted out
where: {attribute: email_opt_out, op: is_true}
"""
CAMPAIGNS = """\
kind: destination
name: bench-s3
type: s3
settings: {bucket: bench, prefix: out/, region: us-east-1, endpoint_url: "ENDPOINT"}
file: {format: csv, compression: gzip, header: true}
default_attributes: ATTRIBUTES
---
kind: campaign
name: Narrow
audience: {include: [Narrow], exclude: [Opted out]}
treatments:
  - {name: A, percent: 45, destinations: [bench-s3]}
  - {name: B, percent: 45, destinations: [bench-s3]}
control: 10
---
kind: campaign
name: Broad
audience: {include: [Broad], exclude: [Opted out]}
treatments:
  - {name: All, percent: 100, destinations: [bench-s3]}
---
kind: campaign
name: Recurring
audience: {include: [Narrow], exclude: [Opted out]}
treatments:
  - {name: A, percent: 45, destinations: [bench-s3]}
  - {name: B, percent: 45, destinations: [bench-s3]}
control: 10
schedule: {recurring: {every: week}}
""".replace("ATTRIBUTES", ATTRIBUTES)
NARROW_WHERE = (
    "loyalty_tier in ('gold', 'platinum') and last_order_date >= DAY_120 "
    "and email_opt_out is not true"
)
BROAD_WHERE = "lifetime_order_count >= 0 and email_opt_out is not true"


class PeakMemory:
    """Samples this process's resident size every 5 ms; `peak` is the most seen above the start."""

    def __init__(self) -> None:
        self.start = self.peak = 0
        self._running = False
        self._thread: threading.Thread | None = None

    @staticmethod
    def resident() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, self.resident() - self.start)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self.start, self.peak, self._running = self.resident(), 0, True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()


@contextmanager
def moto(port: int | None = None) -> Iterator[str]:
    """An S3 server on loopback in a process of its own (so it takes no CPU time from the
    process measured), with a bucket `bench`; on `port`, or a free one."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    try:
        for _ in range(200):  # up to 20 s for the server to listen
            try:
                s3.create_bucket(Bucket="bench")
                break
            except EndpointConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait()


def baseline_sql(where: str, seed: str) -> tuple[str, str]:
    """The baseline's statement assigning each customer a bucket by the campaign's hash (into
    a temporary table `assigned`), and the attribute columns its files select from `m`."""
    position = bucket(exp.column("amperity_id", table="c"), seed, "duckdb").sql("duckdb")
    assign = (
        "create or replace temp table assigned as select c.amperity_id, "
        f"{position} as bucket from customer_360 c where {where}"
    )
    return assign, ", ".join(f"m.{c.strip()}" for c in ATTRIBUTES.strip("[]").split(","))


def hand_written(
    connection: Any, where: str, groups: list[tuple[str, int]], seed: str, url: str, folder: Path
) -> int:
    """Select, split with the same hash, COPY each group to gzip CSV, upload: the baseline."""
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    assign, columns = baseline_sql(where, seed)
    connection.execute(assign)
    rows = 0
    low = 0
    for name, high in groups:
        target = folder / f"{name}.csv.gz"
        connection.execute(
            f"copy (select {columns} from assigned a join merged_customers m "
            f"on m.amperity_id = a.amperity_id where a.bucket >= {low} and a.bucket < {high}"
            f") to '{target}' (header, compression gzip)"
        )
        rows += connection.execute(
            f"select count(*) from assigned where bucket >= {low} and bucket < {high}"
        ).fetchone()[0]
        s3.upload_file(str(target), "bench", f"baseline/{target.name}")
        low = high
    return rows


def timed(run: Callable[[], Any]) -> tuple[float, int, Any]:
    """Wall time, peak memory above the start, and the result of one run."""
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
    return elapsed, memory.peak, result


def run(ws: Workspace, profiles: int) -> Table:
    """Both campaigns both ways, and the recurring run; one table."""
    connection = getattr(ws.engine, "connection")  # noqa: B009 - the DuckDB engine's own
    day_120 = f"date '{(ws.compile_context().today - timedelta(days=120)).isoformat()}'"
    table = Table(title=f"Campaign delivery to S3 (moto) — {profiles:,} profiles")
    for column in (
        "campaign",
        "rows",
        "Audience s",
        "SQL+COPY s",
        "ratio",
        "rows/s",
        "peak MB",
        "SQL peak MB",
    ):
        table.add_column(column, justify="left" if column == "campaign" else "right")
    with moto() as url, tempfile.TemporaryDirectory() as scratch:
        ws.apply_documents(load_text(SEGMENTS + "---\n" + CAMPAIGNS.replace("ENDPOINT", url)))
        now = ws.clock()
        cases = (
            ("Narrow", NARROW_WHERE.replace("DAY_120", day_120), [("A", 4500), ("B", 9000)]),
            ("Broad", BROAD_WHERE, [("All", 10_000)]),
        )
        full = 0.0
        for name, where, groups in cases:
            ours, our_peak, result = timed(lambda n=name: ws.campaign_run(n, now=now))
            if result.status != "succeeded":
                raise SystemExit(f"{name}: {result.error}")
            theirs, their_peak, rows = timed(
                lambda w=where, g=groups, n=name: hand_written(
                    connection, w, g, n, url, Path(scratch)
                )
            )
            sent = sum(d.rows for d in result.deliveries)
            if sent != rows:
                raise SystemExit(f"{name}: Audience sent {sent:,} rows, the baseline {rows:,}")
            table.add_row(
                name,
                f"{sent:,}",
                f"{ours:.2f}",
                f"{theirs:.2f}",
                f"{ours / theirs:.2f}",
                f"{sent / ours:,.0f}",
                f"{our_peak / 2**20:,.0f}",
                f"{their_peak / 2**20:,.0f}",
            )
            if name == "Narrow":
                full = ours
        timed(lambda: ws.campaign_run("Recurring", now=now))
        # 10 % of the audience's size newly qualifies: silver members become gold.
        narrow = NARROW_WHERE.replace("DAY_120", day_120)
        connection.execute(
            "update customer_360 set loyalty_tier = 'gold' where amperity_id in (select "
            "amperity_id from customer_360 where loyalty_tier = 'silver' and last_order_date >= "
            f"{day_120} and email_opt_out is not true order by amperity_id limit "
            f"(select count(*) // 10 from customer_360 where {narrow}))"
        )
        again, peak, second = timed(
            lambda: ws.campaign_run("Recurring", now=now + timedelta(days=7))
        )
        new_rows = sum(d.rows for d in second.deliveries)
        table.add_row(
            "Recurring, 10 % new",
            f"{new_rows:,}",
            f"{again:.2f}",
            f"{full:.2f} (full)",
            f"{again / full:.2f}",
            "",
            f"{peak / 2**20:,.0f}",
            "",
        )
    return table
