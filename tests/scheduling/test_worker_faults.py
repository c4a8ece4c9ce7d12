"""The runtime under faults (issue 7), with real processes where a crash is the point: workers
started together on the same due runs, a worker killed with SIGKILL mid-upload and after
publishing, a worker paused past its lease that wakes up after the takeover, a clock that jumps
three days, a destination answering 503, the metadata database dropping its connections,
temporary files left by a killed writer.

Worker processes are `audience worker --once` run as `python -c "…main()"`, sometimes with a few
lines before `main()` that make the moment of the kill certain (a gate all workers wait at, an
fsync that hangs); uploads are slowed or stalled by a fault-injecting HTTP proxy in front of
moto's S3 server (`fault_proxy`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from audience.cli.main import app
from audience.compile.campaign import CUSTOMER
from audience.definitions.loader import validate_data
from audience.scheduling.worker import Worker
from audience.settings import (
    SETTINGS_FILE,
    EngineSettings,
    Settings,
    StoreSettings,
    WorkerSettings,
    render_settings,
)
from audience.store.runs import Run
from audience.workspace import Workspace
from faultproxy import Fault, FaultProxy
from realservices import NOW, POSTGRES_URL, SAMPLE_PROFILES, SAMPLE_SEED

GOLD = {
    "kind": "segment",
    "name": "Gold",
    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
}
EVERYONE = {
    "kind": "segment",
    "name": "Everyone",
    "where": {"attribute": "lifetime_order_count", "op": ">=", "value": 0},
}
TEN_ATTRIBUTES = [
    *("amperity_id", "email", "given_name", "surname", "address", "address2"),
    *("city", "state", "postal", "country"),
]
ASAP = {"once": "asap"}
NAMED_BY_DUE_TIME = "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d_%H%M') }}"
SHORT_LEASE = {"AUDIENCE__WORKER__LEASE_SECONDS": "2"}
CLI = "from audience.cli.main import main; main()"
GATE = (
    # Import first, then wait at a gate: the test opens it once every worker is ready, so they
    # really start together.
    "import os, pathlib, time\n"
    "import audience.cli.main, audience.scheduling.worker, audience.workspace\n"
    "_gate = pathlib.Path(os.environ['AUDIENCE_TEST_GATE'])\n"
    "(_gate.parent / f'ready-{os.getpid()}').touch()\n"
    "while not _gate.exists(): time.sleep(0.005)\n"
)
STALLED_FSYNC = (
    # The data reaches the temporary file, then its fsync hangs: the kill lands between writing
    # and renaming, as a crash or a power cut would.
    "import os, pathlib, time\n"
    "_mark, _fsync = pathlib.Path(os.environ['AUDIENCE_TEST_MARK']), os.fsync\n"
    "_only = os.environ.get('AUDIENCE_TEST_STALL_ON', '')\n"
    "def _stalled(fd):\n"
    "    _name = os.readlink(f'/proc/self/fd/{fd}')\n"
    "    if _name.endswith('.tmp') and _only in _name:\n"
    "        _mark.touch()\n"
    "        time.sleep(600)\n"
    "    _fsync(fd)\n"
    "os.fsync = _stalled\n"
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def folder_destination(path: Path, **file: Any) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": str(path)},
        "file": {"format": "csv", "filename": NAMED_BY_DUE_TIME, **file},
        "default_attributes": ["amperity_id", "email"],
    }


def s3_destination(bucket: str, endpoint: str, **file: Any) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": "out",
        "type": "s3",
        "settings": {
            "bucket": bucket,
            "prefix": "drop/",
            "region": "us-east-1",
            "endpoint_url": endpoint,
        },
        "file": {"format": "csv", "filename": NAMED_BY_DUE_TIME, **file},
        "default_attributes": ["amperity_id", "email"],
    }


def campaign(name: str, schedule: dict[str, Any], segment: str = "Gold") -> dict[str, Any]:
    return {
        "kind": "campaign",
        "name": name,
        "audience": {"include": [segment]},
        "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
        "control": 10,
        "schedule": schedule,
    }


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def duckdb_workspace(directory: Path, sample_database: Path) -> Path:
    """A workspace folder as `audience init` makes it (DuckDB, SQLite store), with the sample."""
    directory.mkdir()
    shutil.copy(sample_database, directory / "customer360.duckdb")
    (directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    return directory


def postgres_workspace(directory: Path, schema: str) -> Path:
    """A workspace folder on PostgreSQL: the customer data and the metadata store both in the
    test's own schema, with the sample loaded."""
    directory.mkdir()
    (directory / SETTINGS_FILE).write_text(
        f'[engine]\ntype = "postgres"\nurl = "{POSTGRES_URL}"\nschema = "{schema}"\n\n'
        f'[store]\nurl = "{POSTGRES_URL}?options=-csearch_path%3D{schema}"\n'
    )
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        ws.load_sample(profiles=SAMPLE_PROFILES, seed=SAMPLE_SEED)
    return directory


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Iterator[None]:
    """A worker process still running when its test ends (the test failed) is killed."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()


def worker_process(
    directory: Path,
    now: datetime,
    *,
    prelude: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`audience worker --once --now NOW -w DIRECTORY` in a process of its own."""
    arguments = ["worker", "--once", "--now", now.isoformat(), "-w", str(directory)]
    process = subprocess.Popen(
        [sys.executable, "-c", prelude + CLI, *arguments],
        env={**os.environ, **SHORT_LEASE, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(process)
    return process


def finished(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a worker process; its stderr (where it reports runs), once it exited 0."""
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return err


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def wait_until(happened: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    """Wait (up to a minute) for something the process does; fail if it exits first."""
    deadline = time.monotonic() + 60
    while not happened():
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}): {process.communicate()[1]}")
        assert time.monotonic() < deadline, "the worker never got there"
        time.sleep(0.02)


def only_run(ws: Workspace, name: str) -> Run:
    (run,) = ws.store.runs.history(name)
    return run


def wait_out_the_lease(directory: Path, name: str) -> None:
    """Wait until the run's lease has run out. Leases are timed on the wall clock (a simulated
    --now never expires one), and a stopped worker renews nothing: this is a real wait, at most
    the 2 s lease of these tests. Read again after the wait: a heartbeat the worker sent just
    before it stopped may commit after the first read."""
    while True:
        with Workspace.open(directory) as ws:
            lease = only_run(ws, name).lease_expires_at
        assert lease is not None
        left = (lease - datetime.now(UTC)).total_seconds()
        assert left <= float(SHORT_LEASE["AUDIENCE__WORKER__LEASE_SECONDS"])
        if left < 0:
            return
        time.sleep(left + 0.05)


def duckdb_ledger(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Per run id: ledger rows, distinct customers, rows with a destination (sent)."""
    with duckdb.connect(str(directory / "customer360.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            f"select run_id, count(*), count(distinct {CUSTOMER}), count(destination) "
            "from audience_recipients group by run_id"
        ).fetchall()
    return {run_id: (n, distinct, sent) for run_id, n, distinct, sent in rows}


def postgres_ledger(schema: str) -> dict[str, tuple[int, int, int]]:
    with psycopg.connect(POSTGRES_URL) as connection:
        rows = connection.execute(
            sql.SQL(
                "select run_id, count(*), count(distinct {}), count(destination) "
                "from {}.audience_recipients group by run_id"
            ).format(sql.Identifier(CUSTOMER), sql.Identifier(schema))
        ).fetchall()
    return {run_id: (n, distinct, sent) for run_id, n, distinct, sent in rows}


def assert_recorded_once(ledger: dict[str, tuple[int, int, int]], run: Run) -> None:
    """Each customer of the run is in the ledger once: sent or held in control."""
    rows, customers, sent = ledger[run.id]
    assert rows == customers == run.counts["sent"] + run.counts["control"] > 0
    assert sent == run.counts["sent"]


def objects(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: {"ETag": o["ETag"], "LastModified": o["LastModified"]} for o in listing}


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


# 1. Workers started together on the same due runs ------------------------------------------


@pytest.mark.slow
def test_workers_started_together_run_each_due_time_once(
    tmp_path: Path, own_postgres_schema: str
) -> None:
    directory = postgres_workspace(tmp_path / "workspace", own_postgres_schema)
    out = tmp_path / "out"
    # Round by round: workers, the campaigns' schedule, and when the workers run. Every round
    # brings ten campaigns of its own, scheduled at NOW: ten due times contested by all.
    daily = {"recurring": {"every": "day", "at": "06:00", "timezone": "UTC"}}
    rounds = [
        (2, "Once", {"once": "asap"}, NOW + timedelta(minutes=1)),
        (4, "Daily", daily, (NOW + timedelta(days=1)).replace(hour=6, minute=5)),
    ]
    contested = 0
    for number, (workers, family, schedule, run_at) in enumerate(rounds, 1):
        names = [f"{family} {n:02d}" for n in range(10)]
        with Workspace.open(directory, clock=lambda: NOW) as ws:
            apply(ws, GOLD, folder_destination(out))
            apply(ws, *(campaign(name, schedule) for name in names))
            for name in names:
                ws.activations.schedule("campaign", name)
        gate = tmp_path / f"gate-{number}" / "open"
        gate.parent.mkdir()
        processes = [
            worker_process(directory, run_at, prelude=GATE, env={"AUDIENCE_TEST_GATE": str(gate)})
            for _ in range(workers)
        ]
        ready = gate.parent.glob
        wait_until(lambda n=workers, r=ready: len(list(r("ready-*"))) == n, processes[0])
        gate.touch()
        shares = [finished(p).count(": succeeded") for p in processes]
        assert sum(shares) == len(names), shares  # each run reported once, by one worker
        assert sum(1 for share in shares if share) >= 2, shares  # and the work was shared
        contested += len(names)

        with Workspace.open(directory, clock=lambda at=run_at: at) as ws:
            ledger = postgres_ledger(own_postgres_schema)
            for name in names:
                (run,) = ws.store.runs.history(name)  # one row for the due time
                assert run.status == "succeeded" and run.attempt == 1, run
                assert [d.role for d in run.deliveries] == ["data"]
                assert_recorded_once(ledger, run)
        assert not list(out.rglob("*.tmp"))
        files = sorted(p.name for p in out.iterdir() if p.is_file())
        assert len(files) == contested == len(set(files))
    assert contested >= 20


def test_a_worker_stopping_gives_back_the_run_its_last_runs_end_claimed(
    tmp_path: Path, own_postgres_schema: str
) -> None:
    """On PostgreSQL a successful run's end claims the worker's next run. A worker told to stop
    then gives that run back, queued as before, for any worker to take at once — not when its
    lease expires — and it runs at its first attempt."""
    directory = postgres_workspace(tmp_path / "workspace", own_postgres_schema)
    names = ["First", "Second", "Third"]
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        apply(ws, GOLD, folder_destination(tmp_path / "out"))
        apply(ws, *(campaign(name, ASAP) for name in names))
        for name in names:
            ws.activations.schedule("campaign", name)
    started = NOW + timedelta(minutes=1)
    stop = threading.Event()
    with Workspace.open(directory, clock=lambda: started) as ws:
        worker = Worker(ws, on_run=lambda run: stop.set())
        (first,) = worker.tick(stop)
        waiting = [r for r in ws.store.runs.history() if r.id != first.id]
        assert sorted((r.status, r.attempt, r.claimed_by) for r in waiting) == [
            ("queued", 0, None),
            ("queued", 0, None),
        ]
        rest = Worker(ws).tick()
    assert len(rest) == 2
    assert {(r.status, r.attempt) for r in [first, *rest]} == {("succeeded", 1)}


def test_a_worker_whose_give_back_fails_says_so_and_leaves_the_run_to_its_lease(
    tmp_path: Path, own_postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = postgres_workspace(tmp_path / "workspace", own_postgres_schema)
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        apply(ws, GOLD, folder_destination(tmp_path / "out"))
        apply(ws, campaign("First", ASAP), campaign("Second", ASAP))
        for name in ("First", "Second"):
            ws.activations.schedule("campaign", name)
    stop, heard = threading.Event(), list[BaseException]()
    with Workspace.open(directory, clock=lambda: NOW + timedelta(minutes=1)) as ws:

        def unreachable(*_: Any) -> None:
            raise ConnectionError("the store went away")

        monkeypatch.setattr(ws.store.runs, "release", unreachable)
        worker = Worker(ws, on_run=lambda run: stop.set(), on_error=heard.append)
        (first,) = worker.tick(stop)
        assert [str(e) for e in heard] == ["the store went away"]
        assert Worker(ws).tick() == []  # still this worker's, under its lease
        (held,) = [r for r in ws.store.runs.history() if r.id != first.id]
        assert (held.status, held.claimed_by) == ("running", worker.name)  # until its lease ends


# 2. Killed in the middle of an upload -------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_mid_upload_is_taken_over_once_its_lease_expires(
    tmp_path: Path, fault_proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    # A file of two upload parts (the first 8 MiB): 80 000 customers with ten attributes.
    directory = tmp_path / "workspace"
    directory.mkdir()
    (directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        ws.load_sample(profiles=80_000, seed=SAMPLE_SEED)
        wide = s3_destination(bucket, fault_proxy.url, quote="all")
        apply(ws, EVERYONE, {**wide, "default_attributes": TEN_ATTRIBUTES})
        apply(ws, campaign("Killed", {"once": "asap"}, segment="Everyone"))
        ws.activations.schedule("campaign", "Killed")
    stall = fault_proxy.add(Fault("PUT", "partNumber=2", action="stall"))
    started = NOW + timedelta(minutes=1)

    def part_one_is_up() -> bool:
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return any(
            part["PartNumber"] == 1
            for upload in uploads
            for part in s3.list_parts(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts", [])
        )

    doomed = worker_process(directory, started)
    # Parts go up two at a time: part 1 is up, part 2 hangs.
    wait_until(lambda: fault_proxy.stalled.is_set() and part_one_is_up(), doomed)
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    kill(doomed)

    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Killed")
        assert run.status == "running" and run.attempt == 1
        assert run.claimed_by == f"{os.uname().nodename}:{doomed.pid}/1"  # its first worker
    wait_out_the_lease(directory, "Killed")
    finished(worker_process(directory, started))  # the lease has expired

    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Killed")
    assert run.status == "succeeded" and run.attempt == 2, run.error
    assert stall.hits == 1 and run.counts["sent"] > 70_000
    (data,) = run.deliveries
    key = data.uri.removeprefix(f"s3://{bucket}/")
    assert list(objects(s3, bucket)) == [key]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # stale one aborted
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body.count(b"\n") == run.counts["sent"] + 1  # and a header
    parts = [
        (s.outcome, s.path.split("partNumber=")[1][:1])
        for s in fault_proxy.requests("PUT", "partNumber=")
    ]
    # The killed worker's two parts (sent at once: either may arrive first), part 2 hanging;
    # then the takeover's two.
    assert sorted(parts[:2]) == [("passed", "1"), ("stalled", "2")]
    assert sorted(parts[2:]) == [("passed", "1"), ("passed", "2")]
    assert_recorded_once(duckdb_ledger(directory), run)


# 3. Killed after publishing, before recording success ---------------------------------------


@pytest.mark.slow
def test_a_takeover_finds_the_published_files_and_sends_nothing_again(
    tmp_path: Path, sample_database: Path, fault_proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    directory = duckdb_workspace(tmp_path / "workspace", sample_database)
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        apply(ws, GOLD, s3_destination(bucket, fault_proxy.url, manifest=True, success_file=True))
        apply(ws, campaign("Published", {"once": "asap"}))
        ws.activations.schedule("campaign", "Published")
    fault_proxy.add(Fault("PUT", ".DONE", action="stall"))  # the last file of the run
    started = NOW + timedelta(minutes=1)

    doomed = worker_process(directory, started)
    wait_until(fault_proxy.stalled.is_set, doomed)
    published = objects(s3, bucket)
    assert sorted(k.rsplit(".", 2)[-2:][-1] for k in published) == ["csv", "json"]
    kill(doomed)

    wait_out_the_lease(directory, "Published")
    finished(worker_process(directory, started))
    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Published")
    assert run.status == "succeeded" and run.attempt == 2, run.error
    assert [d.role for d in run.deliveries] == ["data", "manifest", "success"]
    after = objects(s3, bucket)
    assert len(after) == 3 and {k: after[k] for k in published} == published  # not rewritten
    for key in published:  # each published file was sent once, by the killed worker
        assert len(fault_proxy.requests("PUT", key)) == 1
    assert_recorded_once(duckdb_ledger(directory), run)


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_changes_nothing_when_it_wakes(
    tmp_path: Path, own_postgres_schema: str, fault_proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """A worker stopped (SIGSTOP: a long pause, a frozen VM) while its upload hangs loses its
    lease; another takes the run over and finishes it. Woken up, its upload goes through; it
    must not record the run again: no second ledger entry, delivery or outcome."""
    directory = postgres_workspace(tmp_path / "workspace", own_postgres_schema)
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        apply(ws, GOLD, s3_destination(bucket, fault_proxy.url), campaign("Zombie", ASAP))
        ws.activations.schedule("campaign", "Zombie")
    held = fault_proxy.add(Fault("PUT", "Zombie_Offer", action="hold"))
    started = NOW + timedelta(minutes=1)

    sleeper = worker_process(directory, started)
    wait_until(fault_proxy.stalled.is_set, sleeper)
    sleeper.send_signal(signal.SIGSTOP)
    try:
        wait_out_the_lease(directory, "Zombie")
        finished(worker_process(directory, started))
        with Workspace.open(directory, clock=lambda: started) as ws:
            taken_over = only_run(ws, "Zombie")
        assert taken_over.status == "succeeded" and taken_over.attempt == 2
    finally:
        held.release()
        sleeper.send_signal(signal.SIGCONT)
    finished(sleeper)

    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Zombie")
    assert run == taken_over  # the woken worker recorded nothing
    assert [d.role for d in run.deliveries] == ["data"]
    assert len(objects(s3, bucket)) == 1
    assert_recorded_once(postgres_ledger(own_postgres_schema), run)


# 4. The clock jumps three days on a daily schedule -------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "late", "expected"),
    [
        ("latest", timedelta(hours=2), 1),
        ("all", timedelta(hours=2), 3),
        ("skip", timedelta(hours=2), 0),
        ("skip", timedelta(minutes=30), 1),  # the newest due time is still within the grace
    ],
)
def test_a_clock_jumping_three_days_is_caught_up_by_the_policy(
    fresh_workspace: Workspace, catch_up: str, late: timedelta, expected: int
) -> None:
    ws, clock = fresh_workspace, Clock(NOW)
    ws.clock = clock
    apply(ws, GOLD, folder_destination(ws.directory / "out"))
    schedule = {
        "recurring": {"every": "day", "at": "06:00", "timezone": "UTC", "catch_up": catch_up}
    }
    apply(ws, campaign("Daily", schedule))
    ws.activations.schedule("campaign", "Daily")
    worker = Worker(ws, name="w")
    first_due = (NOW + timedelta(days=1)).replace(hour=6, minute=0)
    clock.now = first_due + timedelta(minutes=1)
    (on_time,) = worker.tick()
    clock.now = first_due + timedelta(days=3) + late  # three more 06:00s passed unseen
    caught_up = worker.tick()
    assert len(caught_up) == expected
    assert all(r.status == "succeeded" for r in caught_up)
    dues = [r.scheduled_for for r in (on_time, *caught_up)]
    assert dues[1:] == [first_due + timedelta(days=d) for d in range(4 - expected, 4)]
    files = sorted(p.name for p in (ws.directory / "out").glob("*.csv"))
    assert files == sorted(f"Daily_Offer_{d:%Y%m%d_%H%M}.csv" for d in dues)  # none collide
    assert worker.tick() == []


# 5. The destination answers 503 twice ------------------------------------------------------


def quick_retries(directory: Path, clock: Clock) -> Workspace:
    """The workspace in `directory` on the test's clock, retrying transient failures after
    seconds rather than minutes."""
    settings = Settings(
        engine=EngineSettings(type="duckdb", path="customer360.duckdb"),
        store=StoreSettings(),
        worker=WorkerSettings(retry_base_seconds=1, retry_cap_seconds=60),
    )
    return Workspace(directory, settings, clock=clock)


def test_a_destination_answering_503_is_retried_after_its_retry_after(
    tmp_path: Path, sample_database: Path, fault_proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    directory = duckdb_workspace(tmp_path / "workspace", sample_database)
    clock = Clock(NOW)
    ws = quick_retries(directory, clock)
    apply(ws, GOLD, s3_destination(bucket, fault_proxy.url))
    apply(ws, campaign("Throttled", {"once": "asap"}))
    ws.activations.schedule("campaign", "Throttled")
    # botocore tries each request 3 times itself: six refusals fail two attempts of the run.
    refusals = fault_proxy.add(
        Fault("PUT", "Throttled_Offer", action="status", times=6, headers={"Retry-After": "30"})
    )
    worker = Worker(ws, name="w")
    for attempt in (1, 2):
        (run,) = worker.tick()
        assert run.status == "queued", run.error
        assert run.attempt == attempt and len(run.retries) == attempt
        assert (
            run.retries[-1]["error_kind"] == "transient" and "SlowDown" in run.retries[-1]["error"]
        )
        assert run.not_before is not None and run.not_before >= clock.now + timedelta(seconds=30)
        assert worker.tick() == []  # not before its time
        clock.now = run.not_before
    (run,) = worker.tick()
    ws.close()
    assert run.status == "succeeded" and run.attempt == 3 and len(run.retries) == 2
    assert refusals.hits == 6
    assert [s.outcome for s in fault_proxy.requests("PUT")] == ["503"] * 6 + ["passed"]
    assert len(objects(s3, bucket)) == 1
    result = CliRunner().invoke(app, ["runs", "Throttled", "-w", str(directory), "--json"])
    (shown,) = json.loads(result.stdout)
    assert shown["status"] == "succeeded" and [r["attempt"] for r in shown["retries"]] == [1, 2]


def test_a_retry_does_not_send_again_what_the_receiver_already_took_away(
    tmp_path: Path, sample_database: Path, fault_proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """A run sends to a drop folder, then S3 refuses; before the retry, the receiver picks the
    folder's file up (removes it). The retry knows the file from the run log (run id and
    checksum) and sends only what is missing: one file each, each recorded once."""
    directory = duckdb_workspace(tmp_path / "workspace", sample_database)
    clock = Clock(NOW)
    ws = quick_retries(directory, clock)
    drop = tmp_path / "drop"
    apply(
        ws,
        GOLD,
        {**folder_destination(drop), "name": "folder"},
        {**s3_destination(bucket, fault_proxy.url), "name": "cloud"},
    )
    both = campaign("Both", ASAP)
    both["treatments"][0]["destinations"] = ["folder", "cloud"]
    apply(ws, both)
    ws.activations.schedule("campaign", "Both")
    fault_proxy.add(Fault("PUT", "Both_Offer", action="status", times=3))  # botocore tries 3×
    worker = Worker(ws, name="w")
    (first,) = worker.tick()
    assert first.status == "queued" and first.error_kind == "transient", first.error
    (taken,) = drop.glob("*.csv")
    sent = taken.read_bytes()
    taken.unlink()  # the receiver has picked it up
    assert first.not_before is not None
    clock.now = first.not_before
    (run,) = worker.tick()
    ws.close()
    assert run.status == "succeeded" and run.attempt == 2, run.error
    assert list(drop.glob("*.csv")) == []  # not sent again
    by_destination = {d.destination: d for d in run.deliveries}
    assert sorted(by_destination) == ["cloud", "folder"] and len(run.deliveries) == 2
    assert by_destination["folder"].uri == taken.resolve().as_uri()
    assert by_destination["folder"].sha256 == hashlib.sha256(sent).hexdigest()
    assert by_destination["folder"].rows == by_destination["cloud"].rows == run.counts["sent"]
    assert len(objects(s3, bucket)) == 1
    rows, customers, sent = duckdb_ledger(directory)[run.id]  # a row per customer and place
    assert customers == run.counts["sent"] + run.counts["control"]
    assert sent == 2 * run.counts["sent"] and rows == sent + run.counts["control"]


# 6. The metadata database drops its connections ---------------------------------------------


def test_a_run_survives_the_metadata_database_dropping_its_connections(
    tmp_path: Path,
    sample_database: Path,
    own_postgres_schema: str,
    fault_proxy: FaultProxy,
    s3: Any,
    bucket: str,
) -> None:
    directory = duckdb_workspace(tmp_path / "workspace", sample_database)
    application = f"audience-faults-{uuid.uuid4().hex[:8]}"
    store = (
        f"{POSTGRES_URL}?application_name={application}"
        f"&options=-csearch_path%3D{own_postgres_schema}"
    )
    settings = Settings(
        engine=EngineSettings(type="duckdb", path="customer360.duckdb"),
        store=StoreSettings(url=store),
    )
    terminated: list[int] = []

    def drop_store_connections() -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            rows = admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = %s and pid <> pg_backend_pid()",
                (application,),
            ).fetchall()
        terminated.append(len(rows))

    two_files = {
        **campaign("Cutoff", {"once": "asap"}),
        "treatments": [
            {"name": name, "percent": 45, "destinations": ["out"]} for name in ("A", "B")
        ],
    }
    with Workspace(directory, settings, clock=Clock(NOW)) as ws:
        apply(ws, GOLD, s3_destination(bucket, fault_proxy.url), two_files)
        ws.activations.schedule("campaign", "Cutoff")
        # While each file is sent, the store's connections (idle in its pool) are cut: the
        # next thing the run records meets a dead connection.
        for key in ("Cutoff_A", "Cutoff_B"):
            fault_proxy.add(Fault("PUT", key, "delay", before=drop_store_connections))
        (run,) = Worker(ws, name="w").tick()
        assert run.status == "succeeded" and run.attempt == 1, run.error
        assert [d.group for d in ws.store.runs.get(run.id).deliveries] == ["A", "B"]
    assert len(terminated) == 2 and min(terminated) >= 1, terminated
    assert len(objects(s3, bucket)) == 2


# 7. Temporary files are cleaned up on takeover ----------------------------------------------


@pytest.mark.slow
def killed_while_writing(
    tmp_path: Path, sample_database: Path, name: str, stall_on: str = "", **file: Any
) -> tuple[Path, Path, datetime]:
    """A campaign's worker process killed after writing a file's data to the temporary name
    (the first whose name holds `stall_on`), before the rename: the workspace, the destination
    folder, and when it started."""
    directory = duckdb_workspace(tmp_path / "workspace", sample_database)
    out = tmp_path / "out"
    with Workspace.open(directory, clock=lambda: NOW) as ws:
        apply(ws, GOLD, folder_destination(out, **file))
        apply(ws, campaign(name, {"once": "asap"}))
        ws.activations.schedule("campaign", name)
    mark = tmp_path / "in-fsync"
    started = NOW + timedelta(minutes=1)
    doomed = worker_process(
        directory,
        started,
        prelude=STALLED_FSYNC,
        env={"AUDIENCE_TEST_MARK": str(mark), "AUDIENCE_TEST_STALL_ON": stall_on},
    )
    wait_until(mark.exists, doomed)
    kill(doomed)
    return directory, out, started


def test_a_killed_writers_temporary_file_is_removed_when_the_run_is_taken_over(
    tmp_path: Path, sample_database: Path
) -> None:
    directory, out, started = killed_while_writing(tmp_path, sample_database, "Torn")
    (left,) = out.glob(".*.tmp")
    assert re.fullmatch(r"\.Torn_Offer_20261123_1530\.csv\.\w{8}\.tmp", left.name)

    wait_out_the_lease(directory, "Torn")
    finished(worker_process(directory, started))
    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Torn")
    assert run.status == "succeeded" and run.attempt == 2, run.error
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["Torn_Offer_20261123_1530.csv"]
    assert_recorded_once(duckdb_ledger(directory), run)


def test_a_killed_writers_temporary_file_is_removed_when_its_run_is_canceled(
    tmp_path: Path, sample_database: Path
) -> None:
    directory, out, started = killed_while_writing(
        tmp_path, sample_database, "Given up", split_rows=100, manifest=True
    )
    (left,) = out.glob(".*.tmp")  # the first part, never renamed
    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Given up")

    def cancel(now: datetime) -> Any:
        return CliRunner().invoke(
            app, ["runs", "cancel", run.id[:8], "--now", now.isoformat(), "-w", str(directory)]
        )

    refused = cancel(started + timedelta(days=1))  # its lease still runs, whatever --now says
    assert refused.exit_code == 1 and "lease" in refused.stderr and left.exists()
    wait_out_the_lease(directory, "Given up")
    canceled = cancel(started)
    assert canceled.exit_code == 0, canceled.stderr
    assert canceled.stdout.strip() == f"Run {run.id} canceled; removed 1 half-written file"
    assert list(out.glob(".*.tmp")) == [] and list(out.glob("*.csv")) == []
    assert list((out / ".audience").iterdir()) == []
    with Workspace.open(directory, clock=lambda: started) as ws:
        assert only_run(ws, "Given up").status == "canceled"


def test_a_canceled_run_s_published_files_are_said_to_stay_and_its_retry_finishes_it(
    tmp_path: Path, sample_database: Path
) -> None:
    """A worker killed while writing the second part of a split file had published the first:
    canceling the run says that file stays where it was sent, unrecorded in the ledger, and
    how to finish the run; retrying the canceled run sends the rest, and the first part once."""
    directory, out, started = killed_while_writing(
        tmp_path, sample_database, "Halfway", stall_on="_2.csv.", split_rows=100
    )
    published = sorted(p.name for p in out.glob("*.csv"))
    assert len(published) == 1 and list(out.glob(".*_2.csv.*.tmp"))
    wait_out_the_lease(directory, "Halfway")
    with Workspace.open(directory, clock=lambda: started) as ws:
        run = only_run(ws, "Halfway")
    canceled = CliRunner().invoke(
        app, ["runs", "cancel", run.id, "--now", started.isoformat(), "-w", str(directory)]
    )
    assert canceled.exit_code == 0, canceled.stderr
    said = " ".join(canceled.stdout.split())  # as one line, however the terminal wraps it
    assert "removed 1 half-written file" in said
    assert "the files it had published (1) remain at the destination" in said
    assert f"runs retry {run.id}" in said
    assert sorted(p.name for p in out.glob("*.csv")) == published  # nothing taken back
    retried = CliRunner().invoke(
        app, ["runs", "retry", run.id, "--now", started.isoformat(), "-w", str(directory)]
    )
    assert retried.exit_code == 0, retried.stderr
    with Workspace.open(directory, clock=lambda: started) as ws:
        done = only_run(ws, "Halfway")
    assert done.status == "succeeded", done.error
    names = [d.uri.rsplit("/", 1)[-1] for d in done.deliveries if d.role == "data"]
    assert sorted(names) == sorted(p.name for p in out.glob("*.csv")) and published[0] in names
    assert len(names) == len(set(names)) > 1
    assert_recorded_once(duckdb_ledger(directory), done)
