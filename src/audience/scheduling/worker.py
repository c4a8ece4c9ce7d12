"""The worker: queues the runs that schedules make due, claims them, runs them (SPEC §7).

Each `tick`:

1. **Queue** — for every scheduled activation that owes runs (its row locked in a short
   transaction of its own, so several workers share the work and claim at once), the due times
   its schedule owes by now under its catch-up policy become queued runs. A run is unique by
   (kind, name, due time), so a due time is queued once, whoever sees it.
2. **Claim and run** — the oldest ready run (queued and past its back-off, or running under a
   lease that expired because its worker died) is claimed under a lease, run with a heartbeat,
   and closed: succeeded, failed, or queued again after a transient failure (`RetryPolicy`).
   Repeated until nothing is ready. On PostgreSQL a successful run's end also claims the next
   queued run, in the same statement; a worker that stops gives that run back.

Once a day (the first tick of each UTC day of the workspace's clock) the worker also rebuilds the
order summary that segment insights read, if insights keep one.

The customer database is closed whenever the worker has nothing to run (`release_engine`).
DuckDB's is also closed after each run: it lets one process write at a time, so commands in
another terminal get their turn between runs. Other engines' connections serve the next ready
run (reconnecting costs more than a short run's bookkeeping), unless the run failed: a
connection the server dropped is not handed to the next run.
Time comes from the workspace's clock; `--now` makes a worker run as of another moment.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from audience.activation.recording import RetryPolicy
from audience.activation.runner import execute, lease_of, retry_policy, this_process
from audience.definitions.schedule import Schedule
from audience.errors import AudienceError
from audience.scheduling.schedule import due_times
from audience.store.activations import RUNNING_STATES, scheduled_state
from audience.store.runs import DueRun, NextClaim, Run

if TYPE_CHECKING:
    from audience.workspace import Workspace

REFRESH_STATISTICS_AFTER = 50
"""Runs queued in one go after which the run log's statistics are refreshed."""
FIRST_QUEUE_ROUND = 5
"""Activations a worker queues in its first transaction: few enough that the first runs are
there to claim (by any worker) at once, while it queues the rest in rounds that double (so a
burst of 500 takes 7 transactions, not 100), and workers starting together queue different
ones (each skips the rows another holds)."""


_NUMBERS = itertools.count(1)
"""Numbers the workers of one process."""
_SUMMARY_DAYS: dict[Path, date] = {}
"""The day this process's workers last rebuilt each workspace's order summary."""
_SUMMARY_DAYS_LOCK = threading.Lock()


class Worker:
    """Runs what is due in one workspace, one run at a time."""

    def __init__(
        self,
        ws: Workspace,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        on_run: Callable[[Run], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.ws = ws
        self.name = name or f"{this_process()}/{next(_NUMBERS)}"
        """Who holds the runs this worker claims: the process, and which of its workers (the
        threads of `--concurrency` each fence their own runs)."""
        self.retry = retry or retry_policy(ws)
        self.on_run = on_run
        """Hears of each run as it ends (the CLI prints a line)."""
        self.on_error = on_error
        """Hears of what went wrong outside a run (the store unreachable, a bug), which the
        worker survives."""
        self._order = random.Random()
        """The order this worker queues owed activations in: its own, so that workers
        starting together spread out."""
        self._single_writer = ws.settings.engine.type == "duckdb"
        self._claimed: Run | None = None
        """The run claimed with the last run's end, to run next."""

    def tick(self, stop: threading.Event | None = None) -> list[Run]:
        """Queue what schedules owe, then run everything ready (until `stop` is set: a run
        under way ends first); the runs that ended."""
        self.queue_due(self.ws.clock())
        ended: list[Run] = []
        try:
            while not (stop is not None and stop.is_set()) and (run := self.run_next()) is not None:
                ended.append(run)
            if not (stop is not None and stop.is_set()):
                self.refresh_order_summary()
        finally:
            claimed, self._claimed = self._claimed, None
            if claimed is not None:  # stopping: another worker may take it at once
                try:
                    self.ws.store.runs.release(claimed, self.name)
                except Exception as error:  # its lease expires, and another worker takes it
                    self._heard(error)
            self.ws.release_engine()
        return ended

    def queue_due(self, now: datetime) -> int:
        """Queue the runs every scheduled activation owes at `now`; how many were queued.

        What is owed is worked out once, from a few reads (schedules, definitions, success
        counts), without locks. Then the owed activations are queued in rounds, `FIRST_QUEUE_ROUND`
        first and twice as many each round after, each round one short transaction holding those
        rows and looking again, so the first runs are there to claim at once — by this worker or
        any other. Workers starting
        together share the queueing: each takes the owed activations in an order of its own,
        skips rows another holds and, between rounds, drops those whose newest due time moved
        (another worker queued them). After a burst, the database's statistics are refreshed
        for the claims."""
        ws = self.ws
        successes = ws.store.runs.success_counts()
        recorded = {
            (a.kind, a.name): a for a in ws.store.activations.all() if a.state in RUNNING_STATES
        }
        schedules = ws.activations.schedules(recorded)
        owed = [
            key
            for key, activation in recorded.items()
            if key in schedules
            and due_times(
                schedules[key][0],
                history=ws.activations.history(activation, runs=successes.get(key, 0)),
                now=now,
            )
        ]
        self._order.shuffle(owed)
        queued, size = 0, FIRST_QUEUE_ROUND
        while owed:
            round_, owed, size = owed[:size], owed[size:], size * 2
            queued += self._queue(round_, schedules, now)
            if owed:
                last_dues = ws.store.activations.last_dues()
                moved = {key for key in owed if last_dues.get(key) != recorded[key].last_due}
                owed = [key for key in owed if key not in moved]
        if queued >= REFRESH_STATISTICS_AFTER:
            ws.store.runs.refresh_statistics()
        return queued

    def _queue(
        self,
        keys: list[tuple[str, str]],
        schedules: dict[tuple[str, str], tuple[Schedule | None, int]],
        now: datetime,
    ) -> int:
        """Queue what these activations owe, holding their rows; how many runs were queued."""
        ws = self.ws
        with ws.store.activations.locked(keys) as (session, rows):
            if not rows:
                return 0  # other workers hold them: they are queueing them
            held = [(row.kind, row.name) for row in rows]
            successes = ws.store.runs.success_counts(session, among=held)
            due: list[DueRun] = []
            last_dues: dict[tuple[str, str], datetime] = {}
            for row in rows:
                schedule, version = schedules[row.kind, row.name]
                history = ws.activations.history(
                    scheduled_state(row), runs=successes.get((row.kind, row.name), 0)
                )
                times = due_times(schedule, history=history, now=now)
                due += [DueRun(row.kind, row.name, version, t) for t in times]
                if times:
                    last_dues[row.kind, row.name] = max(times)
            ws.store.activations.set_last_dues(session, last_dues)
            return ws.store.runs.enqueue(session, due)

    def refresh_order_summary(self) -> None:
        """On the first tick of a day, rebuild the order summary (if insights keep one): the
        day's first insights do not wait for it, and edits in place of older orders are read."""
        today = self.ws.clock().astimezone(UTC).date()
        with _SUMMARY_DAYS_LOCK:  # the workers of `--concurrency N` rebuild it once, not N times
            if _SUMMARY_DAYS.get(self.ws.directory) == today:
                return
            try:
                self.ws.refresh_order_summary()
                _SUMMARY_DAYS[self.ws.directory] = today
            except AudienceError as error:  # the runs stand; the next tick tries again
                self._heard(error)

    def run_next(self) -> Run | None:
        """Claim the oldest ready run (unless the last run's end claimed it) and run it; None
        when nothing is ready. A successful run's end claims the next queued run."""
        ws = self.ws
        run, self._claimed = self._claimed, None
        if run is None:
            run = ws.store.runs.claim(
                worker=self.name,
                now=ws.clock(),
                lease=lease_of(ws),
                max_attempts=ws.settings.worker.max_attempts,
            )
        if run is None:
            return None
        ended: Run | None = None
        claim = NextClaim(self.name, ws.clock, lease_of(ws))
        try:
            ended = execute(ws, run, worker=self.name, retry=self.retry, then_claim=claim)
            self._claimed = claim.claimed
        except Exception as error:  # a bug: the run is recorded as failed; serve the others
            self._heard(error)
            ended = ws.store.runs.get(run.id)
        finally:
            if ended is None or ended.status != "succeeded" or self._single_writer:
                ws.release_engine()
            else:  # tables and columns are read afresh for each run, as when reconnecting
                ws.forget_catalog()
        if self.on_run is not None:
            self.on_run(ended)
        return ended

    def serve(self, stop: threading.Event) -> None:
        """Tick until `stop` is set, waiting `worker.poll_seconds` whenever nothing was ready
        — or something went wrong outside a run (the store restarting): then it tries again."""
        while not stop.is_set():
            try:
                ran = self.tick(stop)
            except Exception as error:
                self._heard(error)
                ran = []
            if not ran:
                stop.wait(self.ws.settings.worker.poll_seconds)

    def _heard(self, error: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(error)


def serve_together(
    worker: Callable[[], AbstractContextManager[Worker]],
    *,
    concurrency: int,
    once: bool,
    stop: threading.Event,
) -> None:
    """Run `concurrency` workers side by side, each on a thread with a workspace of its own
    (`worker()` opens one), until `stop` is set — or, with `once`, until each has run what is
    due. The first error that stops a worker stops them all, and is raised once all ended."""
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with worker() as each:
                if once:
                    each.tick(stop)
                else:
                    each.serve(stop)
        except BaseException as error:
            failures.append(error)
            stop.set()

    threads = [
        threading.Thread(target=serve, name=f"audience-worker-{n}") for n in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
