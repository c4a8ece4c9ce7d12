"""The runtime under load: many campaigns due in the same minute, several worker processes, on
PostgreSQL (metadata store and customer data, in a schema of the benchmark's own, dropped at the
end).

Every run must happen exactly once: one run row per campaign, succeeded at its first attempt,
one file each, each customer once in the ledger (checked; the benchmark stops otherwise).
Printed: the time to drain the queue, and per run the worker's own work — queueing, claiming,
the run log's writes, opening and closing the customer database — beside the run itself,
measured inside each worker process by timing those calls: in wall time, and in CPU time (the
worker thread's, plus what the metadata store's server processes spent while each call ran,
read from /proc). Four
workers on two cores wait for a core after every round trip to the store, so wall time counts
that wait as bookkeeping; CPU time counts what the bookkeeping takes from the machine. Issue 7's
target is bookkeeping under 5 % of a run and under 50 ms a run; times are printed, never
asserted.

`python -m bench runtime` prints this table alone. BENCH_POSTGRES_URL (default
postgresql://127.0.0.1:5432/test), BENCH_RUNTIME_CAMPAIGNS (500), BENCH_RUNTIME_WORKERS (4) and
BENCH_RUNTIME_PROFILES (3000) set it up. Each worker process is `python -m bench.runtime DIR
OUT GATE DUE`: a worker already running when the runs come due (it polls once before, when
nothing is due yet), then `audience worker --once`'s tick with its calls timed.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from audience.compile.campaign import CUSTOMER
from audience.definitions.loader import validate_data
from audience.workspace import Workspace

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
CAMPAIGNS = int(os.environ.get("BENCH_RUNTIME_CAMPAIGNS", "500"))
WORKERS = int(os.environ.get("BENCH_RUNTIME_WORKERS", "4"))
PROFILES = int(os.environ.get("BENCH_RUNTIME_PROFILES", "3000"))
TARGET_MS, TARGET_SHARE = 50.0, 0.05

# What a worker does besides the run itself, by the calls that do it.
BOOKKEEPING: dict[str, list[tuple[str, str, str]]] = {
    "queue due runs": [("audience.scheduling.worker", "Worker", "queue_due")],
    "claim": [("audience.store.runs", "RunLog", "claim")],
    "run log writes": [
        *(
            ("audience.store.runs", "RunLog", name)
            for name in (
                "set_version",
                "add_delivery",
                "confirm",
                "finish",
                "release",
                "fail",
                "postpone",
            )
        ),
        # The wait for a file's record, written on a thread of its own while the run goes on.
        ("audience.activation.recording", "RunRecording", "settle"),
    ],
    "open customer database": [("audience.engines", "", "open_engine")],
    "close customer database": [("audience.workspace", "Workspace", "release_engine")],
}
SERVER = "server: "
"""The CPU the metadata store's server processes used while a kind of call ran is kept under this
prefix and the call's name."""
OTHER_STORE_WORK = "other store work (between the calls above)"
CUSTOMER_SESSIONS = "customer database sessions"
"""The CPU the customer database's server processes used for a worker: the runs' queries."""


def documents(folder: Path) -> list[dict[str, Any]]:
    """A segment, a folder destination and the campaigns, each sending its own file."""
    campaigns = [
        {
            "kind": "campaign",
            "name": f"Load {n:03d}",
            "audience": {"include": ["Gold"]},
            "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
            "control": 10,
            "schedule": {"once": "asap"},
        }
        for n in range(CAMPAIGNS)
    ]
    return [
        {
            "kind": "segment",
            "name": "Gold",
            "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
        },
        {
            "kind": "destination",
            "name": "out",
            "type": "filesystem",
            "settings": {"path": str(folder)},
            "file": {"format": "csv", "filename": "{{ campaign_name }}_{{ group_name }}"},
            "default_attributes": ["amperity_id", "email"],
        },
        *campaigns,
    ]


@contextmanager
def own_schema() -> Iterator[str]:
    """A schema of the benchmark's own, dropped afterwards."""
    schema = f"audience_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))


def prepare(directory: Path, schema: str, console: Console) -> datetime:
    """The workspace: settings, sample, definitions, every campaign scheduled at one moment
    (so all are due in the same second); that moment."""
    directory.mkdir()
    (directory / "audience.toml").write_text(
        f'[engine]\ntype = "postgres"\nurl = "{POSTGRES_URL}"\nschema = "{schema}"\n\n'
        f'[store]\nurl = "{POSTGRES_URL}?options=-csearch_path%3D{schema}"\n'
    )
    due = datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    with Workspace.open(directory, clock=lambda: due) as ws:
        ws.load_sample(profiles=PROFILES, seed=1)
        ws.apply_documents([validate_data(d) for d in documents(directory / "out")])
        for n in range(CAMPAIGNS):
            ws.activations.schedule("campaign", f"Load {n:03d}")
    console.print(
        f"Runtime: {PROFILES:,} profiles, {CAMPAIGNS} campaigns applied and scheduled in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return due


def drain(directory: Path, scratch: Path, due: datetime) -> tuple[float, list[dict[str, Any]]]:
    """Start the workers together and wait for them; wall time and each worker's report."""
    gate = scratch / "gate"
    outputs = [scratch / f"worker-{n}.json" for n in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.runtime",
                *(str(argument) for argument in (directory, out, gate, due.isoformat())),
            ],
            stdout=subprocess.DEVNULL,
        )
        for out in outputs
    ]
    try:
        while len(list(scratch.glob("ready-*"))) < WORKERS:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a worker process exited before it was ready")
            time.sleep(0.01)
        start = time.perf_counter()
        gate.touch()
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"a worker process exited with {process.returncode}")
        wall = time.perf_counter() - start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return wall, [json.loads(out.read_text()) for out in outputs]


def check_exactly_once(directory: Path, schema: str, reports: list[dict[str, Any]]) -> list[Any]:
    """Every campaign ran once, at its first attempt, with one file and a clean ledger; the
    runs."""
    ran = [run_id for report in reports for run_id in report["runs"]]
    with Workspace.open(directory) as ws:
        runs = ws.store.runs.history()
    problems = []
    if len(ran) != CAMPAIGNS or len(set(ran)) != CAMPAIGNS:
        problems.append(f"workers ran {len(ran)} runs, {len(set(ran))} distinct")
    if len(runs) != CAMPAIGNS or len({r.activation_name for r in runs}) != CAMPAIGNS:
        problems.append(f"{len(runs)} run rows for {CAMPAIGNS} campaigns")
    bad = [r for r in runs if r.status != "succeeded" or r.attempt != 1]
    if bad:
        problems.append(f"{len(bad)} runs not succeeded at once, e.g. {bad[0].error}")
    files = [p for p in (directory / "out").iterdir() if p.is_file()]
    if len(files) != CAMPAIGNS:
        problems.append(f"{len(files)} files for {CAMPAIGNS} runs")
    with psycopg.connect(POSTGRES_URL) as connection:
        rows, distinct = connection.execute(
            sql.SQL(
                "select count(*), count(distinct (run_id, {})) from {}.audience_recipients"
            ).format(sql.Identifier(CUSTOMER), sql.Identifier(schema))
        ).fetchone() or (0, 0)
    if rows != distinct or rows != sum(r.counts["sent"] + r.counts["control"] for r in runs):
        problems.append(f"the ledger holds {rows} rows, {distinct} distinct")
    if problems:
        raise SystemExit("runtime benchmark: " + "; ".join(problems))
    return runs


def table(wall: float, reports: list[dict[str, Any]], runs: list[Any]) -> Table:
    """Per run: the run itself and each kind of bookkeeping, with their share of the run —
    in wall time, and in CPU time (the worker's, and its database sessions')."""
    seconds: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for report in reports:
        for what, spent in report["timings"].items():
            seconds[what] += spent
        for what, spent in report["cpu"].items():
            cpu[what] += spent
    count = len(runs)
    itself = seconds["run"] / count
    # The run's CPU: the worker's, the store's for its reads (its definitions), and the
    # customer database's session doing its queries.
    itself_cpu = (cpu["run"] + cpu[SERVER + "run"] + cpu[CUSTOMER_SESSIONS]) / count
    result = Table(
        title=f"Runtime: {count} campaigns due at once, {WORKERS} worker processes, PostgreSQL"
    )
    for column in ("", "wall ms per run", "share", "CPU ms per run", "share", "target"):
        result.add_column(column, justify="left" if not column else "right")
    result.add_row("runs, each exactly once", f"{count}", "", "", "", "")
    result.add_row(
        "time to drain",
        f"{wall:.1f} s ({count / wall:.1f} runs/s)",
        "",
        "",
        "",
        "",
        end_section=True,
    )
    durations = [(r.ended_at - r.started_at).total_seconds() * 1000 for r in runs]
    result.add_row(
        "run itself", f"{itself * 1000:.1f}", "100 %", f"{itself_cpu * 1000:.1f}", "100 %", ""
    )
    result.add_row(
        "  started → ended in the run log (median)",
        f"{statistics.median(durations):.1f}",
        "",
        "",
        "",
        "",
        end_section=True,
    )
    total = total_cpu = 0.0
    for what in [*BOOKKEEPING, OTHER_STORE_WORK]:
        per_run = seconds[what] / count
        per_run_cpu = (cpu[what] + cpu[SERVER + what]) / count
        total, total_cpu = total + per_run, total_cpu + per_run_cpu
        result.add_row(
            what,
            f"{per_run * 1000:.1f}" if what in BOOKKEEPING else "",
            f"{per_run / itself:.1%}" if what in BOOKKEEPING else "",
            f"{per_run_cpu * 1000:.1f}",
            f"{per_run_cpu / itself_cpu:.1%}",
            "",
        )
    result.add_row(
        "bookkeeping in all",
        f"{total * 1000:.1f}",
        f"{total / itself:.1%}",
        f"{total_cpu * 1000:.1f}",
        f"{total_cpu / itself_cpu:.1%}",
        f"< {TARGET_MS:.0f} ms, < {TARGET_SHARE:.0%}",
        end_section=True,
    )
    elsewhere = sum(r["wall"] for r in reports) / count - itself - total
    result.add_row("worker time not accounted for", f"{elsewhere * 1000:.1f}", "", "", "", "")
    return result


def run(console: Console) -> Table:
    """Set up, drain, check, and tabulate."""
    with own_schema() as schema, tempfile.TemporaryDirectory(prefix="audience-bench-") as folder:
        directory, scratch = Path(folder) / "workspace", Path(folder) / "scratch"
        scratch.mkdir()
        due = prepare(directory, schema, console)
        wall, reports = drain(directory, scratch, due)
        runs = check_exactly_once(directory, schema, reports)
        console.print(f"Runtime: all {len(runs)} runs ran exactly once")
        return table(wall, reports, runs)


# The worker process ------------------------------------------------------------------------


@dataclass
class _Frame:
    """A timed call under way, and the time of the timed calls made inside it so far."""

    what: str
    inner_wall: float = 0.0
    inner_cpu: float = 0.0


class _Meter:
    """Times a worker process's calls by what they are for — wall time and the thread's CPU —
    and charges the CPU the metadata store's server processes spend to the call under way
    (read from /proc at every call's start and end), so a run's own reads of its definitions
    count as the run's, not as bookkeeping. The run log runs its statements on psycopg's own
    cursor, out of SQLAlchemy's sight: the store's sessions are read, not its statements. (A
    heartbeat's statement, from a thread of its own, would be charged to the call under way:
    it beats every 100 s, and a burst here drains in 20.)

    A file's record is written on a thread of its own while the run goes on: its CPU is
    bookkeeping (and taken out of the run's, whose CPU is the whole process's), and its CPU
    time counts as bookkeeping wall time too — what it can take from the run it overlaps,
    whose wall time is left as it is: counted twice, rather than not at all. The run's wait
    for the record is timed where the run waits (`settle`)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._doing = threading.local()
        self._stacks: dict[int, list[_Frame]] = {}
        """The timed calls under way, innermost last, by thread."""
        self._store_lock = threading.Lock()
        """The store's sessions are read, and charged, by one thread at a time."""
        self._store_sessions: dict[int, float] = {}
        """The metadata store's server processes (both of its pools'), by process id, and the
        CPU each had used at the last call's start or end."""

    def reset(self) -> None:
        """Forget what was timed so far (the store's sessions' use included)."""
        self._charge_store()
        self.spent.clear()
        self.cpu.clear()

    def doing(self) -> str:
        """What this thread is doing now (the innermost timed call); on another thread outside
        a timed call, what the worker's thread is doing."""
        stack = self._stacks.get(threading.get_ident()) or self._stacks.get(
            threading.main_thread().ident or 0
        )
        return stack[-1].what if stack else OTHER_STORE_WORK

    def _charge_store(self) -> None:
        """Charge what the store's sessions used since the last call boundary to what the
        thread was doing meanwhile (the meter's own time kept apart)."""
        start, start_cpu = time.perf_counter(), time.thread_time()
        with self._store_lock:
            for pid, before in list(self._store_sessions.items()):  # a thread may connect
                used = _session_cpu(pid)  # 0 once the session has ended
                self.cpu[SERVER + self.doing()] += max(used - before, 0.0)
                self._store_sessions[pid] = max(used, before)
        wall, cpu = getattr(self._doing, "own", (0.0, 0.0))
        self._doing.own = (
            wall + time.perf_counter() - start,
            cpu + time.thread_time() - start_cpu,
        )

    def _own_cost(self) -> tuple[float, float]:
        """The wall and CPU time the meter has taken on this thread so far."""
        own: tuple[float, float] = getattr(self._doing, "own", (0.0, 0.0))
        return own

    def timed(self, what: str, call: Callable[..., Any]) -> Callable[..., Any]:
        """`call`, timed as `what`: its own time, without the timed calls inside it (a run's
        file records are bookkeeping, not the run)."""

        @functools.wraps(call)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._stacks.setdefault(threading.get_ident(), [])
            self._charge_store()
            stack.append(_Frame(what))
            # A run encodes its files on a thread of its own: the whole process's CPU
            # is the run's while it works; a bookkeeping call's is its thread's.
            cpu_time = time.process_time if what == "run" else time.thread_time
            metering = self._own_cost()
            start, start_cpu = time.perf_counter(), cpu_time()
            try:
                return call(*args, **kwargs)
            finally:
                self._charge_store()
                wall, cpu = time.perf_counter() - start, cpu_time() - start_cpu
                # What the meter took inside the call is not the call's.
                own_wall, own_cpu = self._own_cost()
                wall -= own_wall - metering[0]
                cpu -= own_cpu - metering[1]
                frame = stack.pop()
                beside_the_run = threading.current_thread() is not threading.main_thread()
                if beside_the_run:
                    wall = cpu  # what it can take from the run it overlaps
                self.spent[what] += wall - frame.inner_wall
                self.cpu[what] += cpu - frame.inner_cpu
                if stack:
                    stack[-1].inner_wall += wall
                    stack[-1].inner_cpu += cpu
                elif beside_the_run:
                    self._take_from_the_run(cpu)

        return timed

    def _take_from_the_run(self, cpu: float) -> None:
        """Take the CPU of a call made on another thread out of the run under way."""
        main = self._stacks.get(threading.main_thread().ident or 0, [])
        run = next((frame for frame in main if frame.what == "run"), None)
        if run is not None:
            run.inner_cpu += cpu

    def install(self) -> None:
        """Time the worker's bookkeeping calls and the runs themselves; charge the store's
        sessions to them, and the customer database's sessions to the runs."""
        import importlib

        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        import audience.scheduling.worker
        from audience.engines.postgres import PostgresEngine

        for what, calls in BOOKKEEPING.items():
            for module_name, class_name, name in calls:
                module = importlib.import_module(module_name)
                owner = getattr(module, class_name) if class_name else module
                setattr(owner, name, self.timed(what, getattr(owner, name)))
        worker = audience.scheduling.worker
        setattr(worker, "execute", self.timed("run", getattr(worker, "execute")))  # noqa: B009, B010

        close = PostgresEngine.close

        def closed(engine: PostgresEngine) -> None:
            self.cpu[CUSTOMER_SESSIONS] += _session_cpu(engine.connection.info.backend_pid)
            close(engine)

        setattr(PostgresEngine, "close", closed)  # noqa: B010

        def connected(dbapi_connection: Any, _record: Any) -> None:
            # Only the store pools its connections with SQLAlchemy here.
            self._store_sessions[dbapi_connection.info.backend_pid] = 0.0

        event.listen(Pool, "connect", connected)


def _session_cpu(pid: int) -> float:
    """The CPU time a database session (its server process, on this machine) has used."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return 0.0  # the session has ended


def _worker(directory: Path, out: Path, gate: Path, due: datetime) -> None:
    """One worker process, timed, reporting to `out` as JSON: a worker that was running when
    the runs came due — it polled once a minute before (nothing due yet: its workspace and
    store open), then runs what is due, as `audience worker --once` does."""
    from audience.scheduling.worker import Worker

    meter = _Meter()
    meter.install()
    with Workspace.open(directory, clock=lambda: due - timedelta(minutes=1)) as ws:
        worker = Worker(ws)
        if worker.tick():
            raise SystemExit("a run was due before its time")
        ws.clock = lambda: datetime.now(UTC)
        meter.reset()
        (gate.parent / f"ready-{os.getpid()}").touch()
        while not gate.exists():
            time.sleep(0.002)
        start = time.perf_counter()
        ran = worker.tick()
        wall = time.perf_counter() - start
    report = {
        "wall": wall,
        "runs": [r.id for r in ran],
        "timings": dict(meter.spent),
        "cpu": dict(meter.cpu),
    }
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    _worker(
        Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), datetime.fromisoformat(sys.argv[4])
    )
