"""Activations on their schedule, in one process with a clock the test moves: schedule, pause,
resume, cancel; the worker runs what is due exactly once; statuses; runs retried and canceled;
bad requests refused with the state named."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from audience.activation import ledger
from audience.activation.runner import execute, lease_of
from audience.cli.main import app
from audience.definitions.loader import validate_data
from audience.errors import FileNameCollision, NotFound, ScheduleError, StateError
from audience.scheduling.worker import Worker
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from realservices import NOW

GOLD = {
    "kind": "segment",
    "name": "Gold",
    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def destination(folder: Path) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": "out",
        "type": "filesystem",
        "settings": {"path": str(folder)},
        "file": {
            "format": "csv",
            "filename": "{{ campaign_name }}_{{ group_name }}_{{ now | format('%Y%m%d_%H%M') }}",
        },
        "default_attributes": ["amperity_id", "email"],
    }


def campaign(name: str, schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "campaign",
        "name": name,
        "audience": {"include": ["Gold"]},
        "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
        "control": 10,
        "schedule": schedule,
    }


DAILY = {"recurring": {"every": "day", "at": "06:00", "timezone": "UTC"}}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def ws(fresh_workspace: Workspace, clock: Clock) -> Workspace:
    fresh_workspace.clock = fresh_workspace.lease_clock = clock
    out = fresh_workspace.directory / "out"
    apply(fresh_workspace, GOLD, destination(out))
    return fresh_workspace


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def count(ws: Workspace, sql: str) -> int:
    return int(next(iter(ws.engine.rows(exp.maybe_parse(sql))[0].values())))


def files(ws: Workspace) -> list[str]:
    folder = ws.directory / "out"
    return sorted(p.name for p in folder.glob("*.csv")) if folder.exists() else []


def test_a_one_time_campaign_runs_once_when_scheduled(ws: Workspace, clock: Clock) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    assert ws.activations.status_of("campaign", "Once").status == "draft"
    scheduled = ws.activations.schedule("campaign", "Once")
    assert scheduled.status == "scheduled" and scheduled.next_due == clock.now
    worker = Worker(ws, name="w1")
    (run,) = worker.tick()
    assert run.status == "succeeded" and run.trigger == "schedule"
    assert run.scheduled_for == clock.now
    clock.now += timedelta(days=2)
    assert worker.tick() == []  # once means once
    status = ws.activations.status_of("campaign", "Once")
    assert status.status == "delivered" and status.next_due is None
    assert status.last_run is not None and status.last_run.id == run.id
    assert len(files(ws)) == 1
    # delivered: nothing left to pause, resume or cancel, and the refusal says so
    for verb, said in (("pause", "it is delivered, not scheduled"), ("cancel", "is delivered")):
        with pytest.raises(StateError, match=said):
            getattr(ws.activations, verb)("campaign", "Once")
    with pytest.raises(StateError, match="it is delivered, not paused"):
        ws.activations.resume("campaign", "Once")
    assert ws.activations.status_of("campaign", "Once").status == "delivered"


def test_a_one_time_campaign_at_a_set_time_waits_for_it(ws: Workspace, clock: Clock) -> None:
    at = (NOW + timedelta(hours=3)).isoformat()
    apply(ws, campaign("Later", {"once": at}))
    ws.activations.schedule("campaign", "Later")
    worker = Worker(ws, name="w1")
    clock.now = NOW + timedelta(hours=2, minutes=59)
    assert worker.tick() == []
    clock.now = NOW + timedelta(hours=5)
    (run,) = worker.tick()
    assert run.scheduled_for == NOW + timedelta(hours=3) and run.status == "succeeded"


@pytest.mark.parametrize(("catch_up", "expected"), [("latest", 1), ("all", 3), ("skip", 0)])
def test_missed_days_are_caught_up_as_the_policy_says(
    ws: Workspace, clock: Clock, catch_up: str, expected: int
) -> None:
    schedule = {"recurring": {**DAILY["recurring"], "catch_up": catch_up}}
    apply(ws, campaign("Daily", schedule))
    ws.activations.schedule("campaign", "Daily")  # NOW is 15:30: the first run is tomorrow 06:00
    worker = Worker(ws, name="w1")
    assert worker.tick() == []
    clock.now = NOW + timedelta(days=3, hours=2)  # three 06:00s passed while nothing ran
    ran = worker.tick()
    assert len(ran) == expected
    assert all(r.status == "succeeded" for r in ran)
    assert [r.scheduled_for.hour for r in ran] == [6] * expected
    assert len(files(ws)) == expected
    clock.now = (NOW + timedelta(days=4)).replace(hour=6, minute=10)  # and it goes on
    assert len(worker.tick()) == 1


def test_pause_resume_and_cancel(ws: Workspace, clock: Clock) -> None:
    apply(ws, campaign("Daily", DAILY))
    ws.activations.schedule("campaign", "Daily")
    worker = Worker(ws, name="w1")
    assert ws.activations.pause("campaign", "Daily").status == "paused"
    clock.now = NOW + timedelta(days=2)
    assert worker.tick() == []  # paused: nothing runs
    resumed = ws.activations.resume("campaign", "Daily")
    assert resumed.status == "scheduled"
    assert worker.tick() == []  # the days missed while paused are not caught up
    assert resumed.next_due is not None and resumed.next_due > clock.now
    clock.now = resumed.next_due
    assert len(worker.tick()) == 1
    assert ws.activations.cancel("campaign", "Daily").status == "canceled"
    clock.now += timedelta(days=3)
    assert worker.tick() == []


def test_runs_queued_before_a_pause_are_not_run_when_it_resumes(
    ws: Workspace, clock: Clock
) -> None:
    """Resuming starts from now: the due times a catch-up had queued, not yet run, when the
    campaign was paused are dropped with those missed while paused (a run asked for by hand
    stays queued); the next due time runs."""
    daily = {"recurring": {**DAILY["recurring"], "catch_up": "all"}}
    apply(ws, campaign("Daily", daily))
    ws.activations.schedule("campaign", "Daily")
    worker = Worker(ws, name="w1")
    clock.now = NOW + timedelta(days=3)
    assert worker.queue_due(clock.now) == 3  # queued, not run yet
    ws.activations.pause("campaign", "Daily")
    clock.now += timedelta(hours=2)
    resumed = ws.activations.resume("campaign", "Daily")
    assert [r.status for r in ws.store.runs.active("campaign", "Daily")] == []
    assert worker.tick() == []
    assert resumed.next_due is not None and resumed.next_due > clock.now
    clock.now = resumed.next_due
    (run,) = worker.tick()
    assert run.status == "succeeded" and run.scheduled_for == resumed.next_due
    assert len(files(ws)) == 1


HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(600)
"""


def test_a_run_that_finds_the_database_held_too_long_is_tried_again_later(
    ws: Workspace, clock: Clock
) -> None:
    """Another process (a notebook, a long query) holding the DuckDB file beyond
    `engine.lock_timeout` fails the attempt as transient: the run is queued again after a
    back-off, and runs once the file is free."""
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    ws.release_engine()
    ws.settings.engine.lock_timeout = 0.2
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ws.directory / "customer360.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        (postponed,) = Worker(ws, name="w1").tick()
    finally:
        holder.kill()
        holder.wait()
    assert postponed.status == "queued" and postponed.error_kind == "transient"
    assert postponed.error is not None and "engine.lock_timeout" in postponed.error
    assert postponed.not_before is not None and postponed.not_before > clock.now
    assert ws.activations.status_of("campaign", "Once").status == "scheduled"
    clock.now = postponed.not_before
    (run,) = Worker(ws, name="w1").tick()
    assert run.id == postponed.id and run.status == "succeeded" and run.attempt == 2
    assert len(files(ws)) == 1


def test_bad_requests_are_refused_with_the_state_and_change_nothing(
    ws: Workspace, clock: Clock
) -> None:
    apply(ws, campaign("Daily", DAILY))
    with pytest.raises(StateError, match="it is a draft, not paused"):
        ws.activations.resume("campaign", "Daily")
    with pytest.raises(StateError, match="not scheduled"):
        ws.activations.cancel("campaign", "Daily")
    ws.activations.schedule("campaign", "Daily")
    with pytest.raises(StateError, match="scheduled already"):
        ws.activations.schedule("campaign", "Daily")
    past = (NOW - timedelta(days=1)).isoformat()
    apply(ws, campaign("Past", {"once": past}))
    with pytest.raises(ScheduleError, match=r"schedule\.once"):
        ws.activations.schedule("campaign", "Past")
    assert ws.activations.status_of("campaign", "Past").status == "draft"
    # A stored campaign whose segment exists only as a draft (or not at all) is not scheduled.
    draft_only = {**GOLD, "name": "Silver", "status": "draft"}
    apply(ws, draft_only)
    drafty = {**campaign("Drafty", {"once": "asap"}), "audience": {"include": ["Silver"]}}
    missing = {**campaign("Missing", {"once": "asap"}), "audience": {"include": ["Bronze"]}}
    ws.store.save_definitions(((d["kind"], d["name"], d) for d in (drafty, missing)), NOW)
    with pytest.raises(StateError, match="'Silver' is a draft"):
        ws.activations.schedule("campaign", "Drafty")
    with pytest.raises(StateError, match="'Bronze' does not exist"):
        ws.activations.schedule("campaign", "Missing")
    assert ws.activations.status_of("campaign", "Drafty").status == "draft"


def test_leases_are_timed_on_their_own_clock_not_the_simulated_one(
    ws: Workspace, clock: Clock
) -> None:
    """A worker simulating a day three days on (`--now`) neither takes over a run whose
    worker holds a live lease on real time, nor hands out leases that real time sees expired."""
    wall = Clock(clock.now)
    ws.lease_clock = wall
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    Worker(ws).queue_due(clock.now)
    held = ws.store.runs.claim(worker="busy", now=clock.now, lease=lease_of(ws), max_attempts=5)
    assert held is not None
    clock.now += timedelta(days=3)  # the schedule's time jumps; the lease's does not
    simulating = Worker(ws, name="simulating")
    assert simulating.tick() == []  # the busy worker's lease still holds
    with pytest.raises(StateError, match="lease"):
        ws.activations.cancel_run(held.id)
    (run,) = ws.store.runs.history("Once")
    assert run.status == "running" and run.attempt == 1
    assert run.lease_expires_at == wall.now + lease_of(ws).length  # on the lease clock
    wall.now += lease_of(ws).length + timedelta(seconds=1)
    (taken,) = simulating.tick()
    assert taken.id == held.id and taken.attempt == 2 and taken.status == "succeeded"


def test_a_run_whose_worker_died_is_taken_over_when_its_lease_expires(
    ws: Workspace, clock: Clock
) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    dead = Worker(ws, name="dead")
    dead.queue_due(clock.now)
    lease = lease_of(ws)
    claimed = ws.store.runs.claim(worker="dead", now=clock.now, lease=lease, max_attempts=5)
    assert claimed is not None and claimed.status == "running"  # ... and then it died
    alive = Worker(ws, name="alive")
    assert alive.tick() == []  # the lease still holds
    assert ws.activations.status_of("campaign", "Once").status == "running"
    with pytest.raises(StateError, match="lease"):
        ws.activations.cancel_run(claimed.id)
    with pytest.raises(StateError, match=r"running already .*on dead.*`audience runs cancel`"):
        ws.activations.retry(claimed.id)  # says what to do if its worker died
    clock.now += lease.length + timedelta(seconds=1)
    (run,) = alive.tick()
    assert run.id == claimed.id and run.attempt == 2 and run.status == "succeeded"
    assert len(files(ws)) == 1


def test_a_failed_run_is_retried_by_id_and_a_success_is_not(
    ws: Workspace, tmp_path: Path, clock: Clock
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    apply(ws, {**destination(blocker), "name": "out"}, campaign("Once", {"once": "asap"}))
    failed = ws.campaign_run("Once")
    assert failed.status == "failed" and failed.error_kind == "terminal"
    assert ws.activations.status_of("campaign", "Once").status == "error"
    apply(ws, destination(ws.directory / "out"))
    clock.now += timedelta(seconds=1)
    ws.activations.schedule("campaign", "Once")  # the user fixed it: no longer an error
    assert ws.activations.status_of("campaign", "Once").status == "scheduled"
    retried = ws.activations.retry(failed.id[:12])
    assert retried.id == failed.id and retried.attempt == 2 and retried.status == "succeeded"
    with pytest.raises(StateError, match="nothing to retry"):
        ws.activations.retry(failed.id)


def test_a_manual_run_without_now_can_be_named_again(ws: Workspace, clock: Clock) -> None:
    clock.now = NOW.replace(microsecond=123456)
    apply(ws, campaign("Once", {"once": "asap"}))
    run = ws.campaign_run("Once")
    assert run.scheduled_for == NOW  # to the second: `--now` can say it
    with pytest.raises(StateError, match="already ran successfully"):
        ws.campaign_run("Once", now=NOW)


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_the_runtime_through_the_cli(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    apply(ws, GOLD, destination(ws.directory / "out"), campaign("Daily", DAILY))
    ws.close()
    w, now = ws.directory, NOW.isoformat()
    code, out, _ = cli("campaign", "schedule", "Daily", "-w", w, "--now", now)
    assert code == 0 and "every day at 06:00" in out.replace("\n", " ").replace(
        "daily", "every day"
    )
    code, out, err = cli("campaign", "resume", "Daily", "-w", w, "--now", now)
    assert code == 1 and err.count("\n") == 1 and "not paused" in err
    tomorrow = (NOW + timedelta(days=1, hours=-9)).isoformat()  # 06:30 the next day
    code, _, err = cli("worker", "--once", "-w", w, "--now", tomorrow)
    assert code == 0 and "succeeded" in err
    code, out, _ = cli("status", "-w", w, "--json", "--now", tomorrow)
    (row,) = json.loads(out)
    assert row["status"] == "scheduled" and row["last_run"]["status"] == "succeeded"
    assert row["next_due"].startswith((NOW + timedelta(days=2)).date().isoformat())
    code, out, _ = cli("runs", "Daily", "-w", w, "--json")
    (run,) = json.loads(out)
    assert run["trigger"] == "schedule" and run["attempt"] == 1
    code, _, err = cli("runs", "retry", run["run_id"], "-w", w)
    assert code == 1 and "nothing to retry" in err
    code, _, err = cli("runs", "cancel", "nosuchrun", "-w", w)
    assert code == 1 and "does not exist" in err
    code, out, _ = cli("campaign", "cancel", "Daily", "-w", w, "--now", tomorrow)
    assert code == 0 and "canceled" in out


def test_concurrent_runs_in_one_process_share_the_database(fresh_workspace: Workspace) -> None:
    """`worker --concurrency`: threads of one process run campaigns side by side on one DuckDB
    file, the first of them laying out the ledger tables while the others wait."""
    ws = fresh_workspace
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    names = [f"Side {n}" for n in range(4)]
    apply(
        ws, GOLD, destination(ws.directory / "out"), *(campaign(n, {"once": "asap"}) for n in names)
    )
    for name in names:
        ws.activations.schedule("campaign", name)
    ws.close()
    code, _, err = cli("worker", "--once", "--concurrency", "3", "-w", ws.directory)
    assert code == 0, err
    assert err.count("succeeded") == 4 and "failed" not in err
    assert len(files(ws)) == 4


def test_a_test_send_whose_process_died_is_failed_not_taken_over(
    ws: Workspace, clock: Clock
) -> None:
    """Taking it over would send the whole audience under the campaign's real names."""
    apply(ws, campaign("Once", {"once": "asap"}))
    lease = lease_of(ws)
    test = ws.store.runs.begin(
        kind="campaign",
        name="Once",
        version=1,
        scheduled_for=clock.now,
        now=clock.now,
        worker="dead",
        lease=lease,
        is_test=True,
    )
    clock.now += lease.length + timedelta(seconds=1)
    assert Worker(ws, name="alive").tick() == []
    ended = ws.store.runs.get(test.id)
    assert ended.status == "failed" and ended.error_kind == "abandoned"
    assert files(ws) == []


def test_a_run_whose_workers_keep_dying_is_given_up(ws: Workspace, clock: Clock) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    Worker(ws, name="w").queue_due(clock.now)
    lease = lease_of(ws)
    for attempt in range(1, 4):
        claimed = ws.store.runs.claim(worker="dies", now=clock.now, lease=lease, max_attempts=3)
        assert claimed is not None and claimed.attempt == attempt
        clock.now += lease.length + timedelta(seconds=1)
    assert ws.store.runs.claim(worker="dies", now=clock.now, lease=lease, max_attempts=3) is None
    (run,) = ws.runs("Once")
    assert run.status == "failed" and "stopped 3 times" in (run.error or "")


def test_one_activation_runs_one_run_at_a_time_in_order(ws: Workspace, clock: Clock) -> None:
    """Two due times of one campaign (caught up) are not run side by side: each measures
    "newly qualified" against the run before it."""
    schedule = {"recurring": {**DAILY["recurring"], "catch_up": "all"}}
    apply(ws, campaign("Daily", schedule))
    ws.activations.schedule("campaign", "Daily")
    clock.now = NOW + timedelta(days=2, hours=2)
    Worker(ws, name="w").queue_due(clock.now)
    lease = lease_of(ws)
    first = ws.store.runs.claim(worker="a", now=clock.now, lease=lease, max_attempts=5)
    assert first is not None and first.scheduled_for.day == 24
    assert ws.store.runs.claim(worker="b", now=clock.now, lease=lease, max_attempts=5) is None
    with pytest.raises(StateError, match="running already"):
        ws.campaign_run("Daily", now=NOW + timedelta(days=5))


def test_a_paused_campaign_s_queued_runs_wait(ws: Workspace, clock: Clock) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    worker = Worker(ws, name="w")
    assert worker.queue_due(clock.now) == 1
    ws.activations.pause("campaign", "Once")
    assert worker.run_next() is None  # queued before the pause, and still not sent
    assert files(ws) == []
    ws.activations.resume("campaign", "Once")
    ran = worker.run_next()
    assert ran is not None and ran.status == "succeeded"


def test_every_attempt_that_did_not_succeed_stays_on_the_record(
    ws: Workspace, clock: Clock, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    apply(ws, {**destination(blocker), "name": "out"}, campaign("Once", {"once": "asap"}))
    failed = ws.campaign_run("Once")
    apply(ws, destination(ws.directory / "out"))
    retried = ws.activations.retry(failed.id)
    assert retried.status == "succeeded" and retried.attempt == 2
    (first,) = retried.retries
    assert first["attempt"] == 1 and first["error_kind"] == "terminal"
    assert "not a folder" in first["error"]


def test_lifecycle_messages_say_what_the_campaign_is(ws: Workspace) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    assert ws.campaign_run("Once").status == "succeeded"
    with pytest.raises(StateError, match="it is delivered, not scheduled"):
        ws.activations.pause("campaign", "Once")
    with pytest.raises(NotFound, match="'Nope' does not exist"):
        ws.activations.cancel("campaign", "Nope")


def test_the_next_due_time_comes_after_a_run_made_by_hand_as_of_a_later_moment(
    ws: Workspace, clock: Clock
) -> None:
    apply(ws, campaign("Daily", DAILY))
    ws.activations.schedule("campaign", "Daily")
    ahead = (clock.now + timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    assert ws.run_now("campaign", "Daily", now=ahead).status == "succeeded"  # `--now` ahead
    status = ws.activations.status_of("campaign", "Daily")  # the clock has not moved
    assert status.next_due == ahead + timedelta(days=1)


def test_a_schedule_whose_runs_would_name_their_files_alike_is_refused(ws: Workspace) -> None:
    """Four runs a day into files named by the day: the second run would find the first's file."""
    by_day = destination(ws.directory / "out")
    by_day["file"] = {
        **by_day["file"],
        "filename": "{{ campaign_name }}_{{ now | format('%Y%m%d') }}",
    }
    often = {"recurring": {"cron": "0 */6 * * *", "timezone": "UTC"}}
    with pytest.raises(FileNameCollision, match="would both write") as refused:
        apply(ws, GOLD, by_day, campaign("Often", often))
    assert refused.value.field == "schedule" and "put the time in its file name" in str(
        refused.value
    )
    apply(ws, GOLD, by_day, campaign("Daily", DAILY))  # a day apart: names differ
    by_run = {**by_day, "file": {**by_day["file"], "filename": "{{ campaign_name }}_{{ run_id }}"}}
    apply(ws, by_run, campaign("Often", often))


def test_a_canceled_run_leaves_the_status_of_the_last_run_that_happened(
    ws: Workspace, clock: Clock
) -> None:
    apply(ws, campaign("Once", {"once": "asap"}))
    assert ws.activations.status_of("campaign", "Once").status == "draft"
    assert ws.campaign_run("Once").status == "succeeded"
    clock.now = NOW + timedelta(hours=1)
    queued = ws.activations.queue_now("campaign", "Once")
    ws.activations.cancel_run(queued.id)
    shown = ws.activations.status_of("campaign", "Once")
    assert shown.status == "delivered" and shown.last_run is not None
    assert shown.last_run.status == "canceled"  # the row still shows the newest run
    apply(ws, campaign("Never", {"once": "asap"}))
    ws.activations.cancel_run(ws.activations.queue_now("campaign", "Never").id)
    assert ws.activations.status_of("campaign", "Never").status == "draft"


def test_a_failure_before_a_canceled_run_still_shows_as_an_error(
    ws: Workspace, clock: Clock
) -> None:
    apply(ws, campaign("Flaky", {"once": "asap"}))
    (ws.directory / "out").write_text("a file where the folder should be")
    assert ws.campaign_run("Flaky").status == "failed"
    clock.now = NOW + timedelta(hours=1)
    ws.activations.cancel_run(ws.activations.queue_now("campaign", "Flaky").id)
    assert ws.activations.status_of("campaign", "Flaky").status == "error"


def test_a_burst_is_queued_in_rounds_that_double_each_activation_once(
    ws: Workspace, clock: Clock
) -> None:
    from audience.scheduling.worker import FIRST_QUEUE_ROUND

    names = [f"Burst {n:02d}" for n in range(FIRST_QUEUE_ROUND * 3 + 2)]  # rounds of 5, 10, 2
    apply(ws, *(campaign(name, {"once": "asap"}) for name in names))
    for name in names:
        ws.activations.schedule("campaign", name)
    worker = Worker(ws, name="w")
    assert worker.queue_due(clock.now) == len(names)
    assert worker.queue_due(clock.now) == 0  # nothing is owed twice
    queued = [r.activation_name for r in ws.runs() if r.status == "queued"]
    assert sorted(queued) == names


def test_the_worker_reads_each_schedule_as_the_whole_definition_gives_it(ws: Workspace) -> None:
    """The worker reads only the schedules of stored definitions: each is the schedule the whole
    definition has, the kind's default where the document gives none."""
    send = {"type": "activate", "destinations": ["out"]}
    orchestration = {"kind": "orchestration", "query": "select 1 as n", "destination": "out"}
    journey = {"kind": "journey", "include": ["Gold"], "nodes": [{"name": "Send", **send}]}
    weekly = {"recurring": {"every": "week", "on": "monday", "at": "07:30", "timezone": "UTC"}}
    apply(
        ws,
        {k: v for k, v in campaign("Once", DAILY).items() if k != "schedule"},
        campaign("Daily", DAILY),
        {**journey, "name": "Daily journey"},
        {**journey, "name": "Hourly journey", "schedule": {"every": {"value": 1, "unit": "hours"}}},
        {**orchestration, "name": "By hand"},
        {**orchestration, "name": "Weekly", "schedule": weekly},
    )
    keys = [
        ("campaign", "Once"),
        ("campaign", "Daily"),
        ("journey", "Daily journey"),
        ("journey", "Hourly journey"),
        ("orchestration", "By hand"),
        ("orchestration", "Weekly"),
        ("orchestration", "Missing"),
    ]
    whole = {}
    for kind, name in keys[:-1]:
        definition, version = ws.activations.definition(kind, name)
        whole[kind, name] = (definition.schedule, version)
    assert ws.activations.schedules(keys) == whole
    assert whole["campaign", "Once"][0] is not None and whole["orchestration", "By hand"][0] is None


def test_a_one_time_campaign_whose_run_was_canceled_shows_canceled_and_can_be_scheduled_again(
    ws: Workspace, clock: Clock
) -> None:
    """Its schedule has no runs left and nothing was sent: it is canceled, not scheduled
    forever, and scheduling it again sends it."""
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    assert Worker(ws, name="w").queue_due(clock.now) == 1
    (run,) = [r for r in ws.store.runs.history() if r.status == "queued"]
    ws.activations.cancel_run(run.id)
    shown = ws.activations.status_of("campaign", "Once")
    assert (shown.status, shown.next_due) == ("canceled", None)
    clock.now = NOW + timedelta(minutes=5)
    assert ws.activations.schedule("campaign", "Once").status == "scheduled"
    (sent,) = Worker(ws, name="w").tick()
    assert sent.status == "succeeded", sent.error
    assert ws.activations.status_of("campaign", "Once").status == "delivered"


def test_a_run_goes_on_while_its_file_is_recorded_and_ends_with_the_record(
    ws: Workspace, clock: Clock
) -> None:
    """A file's record is written while the run goes on (here held back until the run is past
    its ledger); the run's end waits for it and holds it, in the run log and in what it says."""
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    worker = Worker(ws, name="w1")
    worker.queue_due(clock.now)
    runs, gate, seen = ws.store.runs, threading.Event(), []
    add_delivery = runs.add_delivery

    def held_back(*args: Any, **kwargs: Any) -> None:
        assert gate.wait(timeout=30)
        add_delivery(*args, **kwargs)

    record_recipients = ledger.record_recipients

    def recipients_then_open_the_gate(*args: Any, **kwargs: Any) -> None:
        record_recipients(*args, **kwargs)
        (running,) = runs.active("campaign", "Once")
        seen.append(runs.get(running.id).deliveries)  # the file is out, its record not yet in
        gate.set()

    with (
        patch.object(runs, "add_delivery", held_back),
        patch.object(ledger, "record_recipients", recipients_then_open_the_gate),
    ):
        (run,) = worker.tick()
    assert seen == [[]]
    assert run.status == "succeeded" and [d.role for d in run.deliveries] == ["data"]
    assert runs.get(run.id).deliveries == run.deliveries
    assert len(files(ws)) == 1


def test_an_attempt_taken_over_before_its_file_was_recorded_leaves_no_ledger(
    ws: Workspace, clock: Clock
) -> None:
    """An attempt whose run was taken over by the time its file's record reached the run log
    publishes its file (under the run's name, which the other attempt finds) but commits
    nothing: no record, no outcome, no ledger rows — the ledger written meanwhile is rolled
    back when the refusal comes in."""
    apply(ws, campaign("Once", {"once": "asap"}))
    ws.activations.schedule("campaign", "Once")
    Worker(ws, name="w1").queue_due(clock.now)
    lease = lease_of(ws)
    stale = ws.store.runs.claim(worker="w1", now=clock.now, lease=lease, max_attempts=5)
    assert stale is not None
    clock.now += lease.length + timedelta(seconds=1)
    taken = ws.store.runs.claim(worker="w2", now=clock.now, lease=lease, max_attempts=5)
    assert taken is not None and taken.attempt == 2

    ended = execute(ws, stale, worker="w1")

    assert (ended.status, ended.attempt, ended.claimed_by) == ("running", 2, "w2")
    assert ended.deliveries == []
    assert count(ws, "select count(*) from audience_recipients") == 0
    assert len(files(ws)) == 1
    done = execute(ws, taken, worker="w2")
    assert done.status == "succeeded" and [d.role for d in done.deliveries] == ["data"]
    assert len(files(ws)) == 1
    assert (
        count(ws, "select count(*) from audience_recipients")
        == count(ws, f"select count(*) from audience_recipients where run_id = '{done.id}'")
        > 0
    )
