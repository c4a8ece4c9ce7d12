"""The REST API under use: `audience serve` in a process of its own over the bench's sample,
requests from this process over loopback HTTP (issue 11).

First each route alone: median and 95th percentile of `GET /segments/{name}/insights`,
`GET /campaigns/{name}/plan` and `GET /status`, beside the hand-written DuckDB query for the same
insights run in this process before the server starts (the database is then the server's).
Then 50 clients at once, reading status and insights for BENCH_API_SECONDS (default 60):
requests per second and errors. Printed, never asserted; issue 11's targets: insights p50
≤ 300 ms at 1M profiles, status p50 ≤ 20 ms, no errors under load.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
from rich.table import Table

from audience.definitions.loader import validate_data
from audience.settings import SETTINGS_FILE, EngineSettings, Settings, render_settings
from audience.workspace import Workspace
from bench.insights import HAND_WRITTEN, SEGMENTS

SEGMENT = "attribute-only"
AUDIENCE = [sys.executable, "-c", "from audience.cli.main import main; main()"]
CLIENTS = 50
SAMPLES = 20


def _workspace(folder: Path, database: Path, password: str | None = None) -> str:
    """A workspace on the bench's database with a segment, a campaign and an admin (with
    `password`, for a browser's sign-in); the admin's API token."""
    folder.mkdir()
    (folder / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    condition, _ = SEGMENTS[SEGMENT]
    documents = [
        {"kind": "segment", "name": SEGMENT, "where": condition},
        {
            "kind": "destination",
            "name": "out",
            "type": "filesystem",
            "settings": {"path": "out"},
            "default_attributes": ["amperity_id", "email"],
        },
        {
            "kind": "campaign",
            "name": "Offer",
            "audience": {"include": [SEGMENT]},
            "treatments": [{"name": "A", "percent": 90, "destinations": ["out"]}],
            "control": 10,
        },
    ]
    settings = Settings(engine=EngineSettings(type="duckdb", path=str(database)))
    with Workspace(folder, settings) as ws:
        ws.apply_documents([validate_data(d) for d in documents])
        ws.store.accounts.add_user("bench", "admin", password, actor="bench", now=ws.clock())
        issued = ws.store.accounts.create_token(
            "bench", "bench", expires_at=None, actor="bench", now=ws.clock()
        )
    return issued.secret


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _latencies(run: Callable[[], object]) -> tuple[float, float]:
    """Median and 95th percentile, in ms, of `SAMPLES` calls of `run` after one warm-up."""
    run()
    times = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def _load(base: str, headers: dict[str, str], seconds: float) -> tuple[int, int]:
    """Requests answered and errors with `CLIENTS` clients alternating status and insights."""
    stop = time.monotonic() + seconds
    answered, errors = [0] * CLIENTS, [0] * CLIENTS

    def client(index: int) -> None:
        paths = ("/status", f"/segments/{SEGMENT}/insights")
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            turn = index
            while time.monotonic() < stop:
                try:
                    ok = http.get(paths[turn % 2]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                answered[index] += ok
                errors[index] += not ok
                turn += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(answered), sum(errors)


def insights_baseline(database: Path) -> float:
    """The hand-written DuckDB insights query of the bench's segment: its p50, in ms."""
    _, where = SEGMENTS[SEGMENT]
    connection = duckdb.connect(str(database), read_only=True)
    sql = HAND_WRITTEN.format(where=where)
    baseline, _ = _latencies(lambda: connection.execute(sql).fetchone())
    connection.close()
    return baseline


@contextmanager
def serving(directory: Path, database: Path) -> Iterator[str]:
    """`audience serve` (without a worker) on `directory` over the bench's database, in a
    process of its own; its address once it answers. Stopped afterwards."""
    port = _free_port()
    server = subprocess.Popen(
        [*AUDIENCE, "serve", "--port", str(port), "--no-worker", "-w", str(directory)],
        env={**os.environ, "AUDIENCE__ENGINE__PATH": str(database)},
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("audience serve did not start") from None
                threading.Event().wait(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(30)


def run(folder: Path, database: Path, profiles: int) -> Table:
    """Each route's latency beside the hand-written insights query, then the load; one table."""
    token = _workspace(folder / "api", database)
    baseline = insights_baseline(database)
    headers = {"Authorization": f"Bearer {token}"}
    table = Table(title=f"REST API — {profiles:,} profiles, one server process")
    for column in ("request", "p50 ms", "p95 ms", "hand-written SQL p50 ms", "target p50"):
        table.add_column(column, justify="left" if column == "request" else "right")
    with serving(folder / "api", database) as base:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for label, path, sql_ms, target in (
                ("GET insights", f"/segments/{SEGMENT}/insights", f"{baseline:.1f}", "300"),
                ("GET campaign plan", "/campaigns/Offer/plan", "—", "—"),
                ("GET status", "/status", "—", "20"),
            ):
                p50, p95 = _latencies(lambda p=path: client.get(p).raise_for_status())
                table.add_row(label, f"{p50:.1f}", f"{p95:.1f}", sql_ms, target)
        seconds = float(os.environ.get("BENCH_API_SECONDS", "60"))
        answered, errors = _load(base, headers, seconds)
        table.add_row(
            f"{CLIENTS} clients, status + insights, {seconds:.0f} s",
            f"{answered / seconds:.1f} req/s",
            f"{errors} errors",
            "—",
            "0 errors",
        )
    return table
