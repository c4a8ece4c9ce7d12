"""The run log: every send of an activation, and each file it delivered (SPEC §7).

A run is keyed by (kind, name, scheduled_for): a real run due at a given time exists once,
whoever makes it (a unique index). Its life:

```
queued ──claim──► running ──► succeeded
   ▲                 │  └───► failed ──retry──► queued
   └──postpone───────┘        (canceled, from queued, running or failed)
```

A running run holds a lease (`claimed_by`, `lease_expires_at`) that its worker renews with a
heartbeat; a run whose lease has expired is taken over by the next claim (its attempt counts up).
Leases are timed on the wall clock (`LeaseTerms`), due times and back-offs on the schedule's.
Claims lock the row they take (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the whole write
is one `BEGIN IMMEDIATE` transaction), so two workers never take the same run.

What an attempt records (deliveries, its outcome) is fenced by its `Holder` — the worker and the
attempt number: an attempt whose run was taken over (its worker paused past the lease, then woke
up) gets `LeaseLost` instead of overwriting what the attempt that took over records.

On PostgreSQL a run's claim and the record of each file it publishes commit without waiting for
their write-ahead log to reach the disk (`WITHOUT_WAITING_FOR_DISK`): a disk flush costs more
than all the rest of a small run's bookkeeping. Its end waits, and so makes everything before it
durable too — one flush per run. They are visible (and fence other attempts) at once. Only if
the store crashes (or fails over) while the run works can they be lost, and then the run, never
reported as ended, repairs: a lost claim leaves it queued, and the attempt that claims it again
fences out the one still working (each worker holds runs under a name of its own, and an
attempt asks the run log before its ledger commits, or has had a file record accepted a moment
before); a lost file record sends the file again under the same name, which the destination
recognises as this run's and does not write twice — only a file the receiver had already taken
away would arrive again.

A worker's successful run ends and claims the worker's next queued run in one statement
(`finish` with `then_claim`), which waits for the disk as an end does: a burst of runs costs one
round trip per run for its end and the next claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Engine,
    and_,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audience.compile.history import CountedRun
from audience.errors import (
    AudienceError,
    DefinitionError,
    EngineError,
    LeaseLost,
    NotFound,
    StateError,
    TerminalDeliveryError,
    TransientError,
)
from audience.shapes import Moment, Shape, left_out_when_none
from audience.store.locking import locked_session
from audience.store.models import ActivationRecord, DeliveryRecord, RunRecord, aware
from audience.store.run_statements import (
    ACTIVE,
    CLAIMABLE,
    DUE,
    QUEUE,
    QUEUED_COLUMNS,
    HotPath,
    HotStatement,
)

_Answer = TypeVar("_Answer")
"""What a statement run by `RunLog._once` answers."""


@dataclass(frozen=True)
class LeaseTerms:
    """How long a claim holds a run without a heartbeat, timed on its own clock: the wall
    clock, never a simulated `--now`, so that a worker simulating another day neither takes
    over nor gives away the runs of workers on real time (tests inject a clock of their own)."""

    length: timedelta
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        """The lease clock's time (UTC)."""
        return utc(self.clock())


@dataclass(frozen=True)
class DueRun:
    """A run a schedule owes: the activation, the definition version it runs, its due time."""

    kind: str
    name: str
    version: int
    scheduled_for: datetime
    trigger: str = "schedule"
    """schedule (owed by a schedule), or manual (asked for now: the API's run)."""


@dataclass(frozen=True)
class DeliveredFile:
    """One file on one destination."""

    destination: str
    uri: str
    rows: int
    bytes: int
    sha256: str
    sub_audience: str | None = None
    group: str | None = None
    role: str = "data"
    """"data", or the "manifest" or "success" file that accompanies a data file."""


@dataclass
class NextClaim:
    """A worker's claim of its next queued run, made in the statement that ends the run before
    it (PostgreSQL: one round trip and one disk flush instead of two each); `claimed` is the
    run it took, once that run has ended (None: nothing was queued, or the run did not
    succeed)."""

    worker: str
    clock: Callable[[], datetime]
    """The schedule's clock, read when the claim is made (as `claim`'s `now`)."""
    lease: LeaseTerms
    claimed: Run | None = None


@dataclass(frozen=True)
class Holder:
    """Who is running an attempt: the worker holding the run's lease, and the attempt's number."""

    worker: str
    attempt: int


@dataclass(frozen=True)
class Run:
    """A run as recorded."""

    id: str
    activation_kind: str
    activation_name: str
    version: int
    scheduled_for: datetime
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    is_test: bool
    attempt: int
    counts: dict[str, Any]
    error: str | None
    error_kind: str | None = None
    trigger: str | None = None
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None
    not_before: datetime | None = None
    retries: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[DeliveredFile] = field(default_factory=list)

    def shape(self) -> RunShape:
        """The run as `runs --json` prints it and the API answers it."""
        return RunShape(
            run_id=self.id,
            activation=self.activation_name,
            kind=self.activation_kind,
            version=self.version,
            scheduled_for=self.scheduled_for,
            started_at=self.started_at,
            ended_at=self.ended_at,
            status=self.status,
            test=self.is_test,
            attempt=self.attempt,
            trigger=self.trigger,
            counts=self.counts,
            error=self.error,
            error_kind=self.error_kind,
            retries=self.retries,
            next_attempt_at=self.not_before,
            deliveries=[
                DeliveryShape(
                    destination=d.destination,
                    sub_audience=d.sub_audience,
                    group=d.group,
                    role=d.role,
                    uri=d.uri,
                    rows=d.rows,
                    bytes=d.bytes,
                    sha256=d.sha256,
                )
                for d in self.deliveries
            ],
            **{self.activation_kind: self.activation_name},
            sent=self.sent,
            control=int(self.counts.get("control", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        """`shape()` as JSON data."""
        return self.shape().model_dump(mode="json")

    @property
    def sent(self) -> int:
        """Customers a campaign or journey run sent; rows an orchestration run sent."""
        return int(self.counts.get("sent", self.counts.get("rows", 0)))


class RetryShape(Shape):
    """An attempt of a run that did not succeed, kept when the next one began."""

    attempt: int
    at: str
    """When it ended: UTC, ISO 8601."""
    error: str
    error_kind: str
    """transient, terminal or abandoned (as `error_kind` of a run)."""


class DeliveryShape(Shape):
    """One file a run put on a destination."""

    destination: str
    sub_audience: str | None
    group: str | None
    role: str
    """data, manifest or success."""
    uri: str
    rows: int
    bytes: int
    sha256: str


class RunShape(Shape):
    """A run: what, when, how it went, what it sent where."""

    run_id: str
    activation: str
    kind: str
    version: int
    scheduled_for: Moment
    started_at: Moment | None
    ended_at: Moment | None
    status: str
    """queued, running, succeeded, failed or canceled."""
    test: bool
    attempt: int
    trigger: str | None
    counts: dict[str, Any]
    error: str | None
    error_kind: str | None
    retries: list[RetryShape]
    next_attempt_at: Moment | None
    deliveries: list[DeliveryShape]
    # The activation's name under its kind (`"campaign": "Win back"`): the key `campaign run
    # --json` has always had; only the run's own kind is set, and printed.
    campaign: str | None = left_out_when_none()
    journey: str | None = left_out_when_none()
    orchestration: str | None = left_out_when_none()
    sent: int
    """Customers sent (rows, for an orchestration)."""
    control: int


def error_kind(error: BaseException) -> str:
    """The kind of an error as the run log keeps it; retries are decided by it."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (TransientError, "transient"),
        (TerminalDeliveryError, "terminal"),
        (EngineError, "engine"),
        (DefinitionError, "definition"),
        (StateError, "state"),
        (NotFound, "not_found"),
        (AudienceError, "error"),
    )
    return next((name for kind, name in kinds if isinstance(error, kind)), "internal")


class RunLog:
    """Runs and deliveries in the metadata store."""

    def __init__(self, sessions: sessionmaker[Session], one_statement_writes: Engine) -> None:
        """`one_statement_writes`: an engine in autocommit mode on the same store, for the
        statements `_first_row` runs."""
        self._sessions = sessions
        store = sessions.kw.get("bind")
        if not isinstance(store, Engine):
            raise TypeError("the run log's sessions must be bound to an engine")
        self._store = store
        self._claims_in_one_statement = one_statement_writes.dialect.name == "postgresql"
        """PostgreSQL claims a queued run in one statement; SQLite, with no row locks, in a
        transaction holding its write lock."""
        self._autocommit = one_statement_writes
        self._hot = HotPath(one_statement_writes.dialect)

    def _first_row(
        self,
        statement: HotStatement,
        values: dict[str, Any],
        *,
        answered: HotStatement | None = None,
    ) -> Any | None:
        """The first row of a read or write that is one statement (atomic by itself, with the
        row locks it takes), committed on its own: no BEGIN and COMMIT round trips. The
        worker's hottest statements go through it, built once (`HotPath`) and run without
        the ORM, whose per-statement work costs more than the round trip. `answered` (same
        parameters) finds the row the statement wrote, if an answer was lost (`_once`); a
        file's record needs none: it is written once."""
        lookup = answered
        return self._once(
            lambda connection: next(iter(statement.rows(connection, values)), None),
            None if lookup is None else lambda c: next(iter(lookup.rows(c, values)), None),
        )

    def _once(
        self,
        write: Callable[[Connection], _Answer | None],
        answered: Callable[[Connection], _Answer | None] | None,
    ) -> _Answer | None:
        """`write`'s answer, on a connection committing each statement by itself.

        A pooled connection the server dropped a moment ago (the store restarting) fails the
        statement, which is run once more on a new connection. Its pool's other connections,
        likely dropped too, are replaced by the statement that found it dropped, and the
        store's by this. It may have run before the connection died: `answered` then finds
        what it wrote, which is returned instead of writing again."""
        for last in (False, True):
            try:
                with self._autocommit.connect() as connection:
                    if last and answered is not None:
                        done = answered(connection)
                        if done is not None:
                            return done
                    return write(connection)
            except DBAPIError as error:
                if last or not error.connection_invalidated:
                    raise
                self._store.dispose(close=False)
        raise AssertionError("unreachable")

    def _why_unchanged(self, run_id: str, holder: Holder | None) -> AudienceError:
        """Why a write fenced by `holder` changed no row (read in a session of its own)."""
        with self._sessions() as session:
            return _fenced_out(session, run_id, holder)

    def begin(
        self,
        *,
        kind: str,
        name: str,
        version: int,
        scheduled_for: datetime,
        now: datetime,
        worker: str,
        lease: LeaseTerms,
        is_test: bool = False,
    ) -> Run:
        """Start a run now (a command, not a worker), or the attempt after a failed one, or take
        over one whose worker's lease has expired; the run stays keyed by its due time."""
        scheduled_for, now, held = utc(scheduled_for), utc(now), lease.now()
        with locked_session(self._sessions) as session:
            row = None
            if not is_test:
                row = session.scalars(_due(kind, name, scheduled_for).with_for_update()).first()
            if row is None:
                row = _new_row(kind, name, version, scheduled_for, is_test, "manual")
                session.add(row)
            elif row.status == "succeeded":
                raise StateError(
                    f"{kind} {name!r} already ran successfully for {_utc(scheduled_for)} "
                    f"(run {row.id}); pass another --now to send again"
                )
            elif row.status == "running" and not _expired(row, held):
                raise StateError(
                    f"{kind} {name!r} is already running (run {row.id}, on {row.claimed_by}, "
                    f"its lease until {_utc(row.lease_expires_at or held)}); if that worker "
                    "died, this runs it once the lease expires, or `audience runs cancel` "
                    "ends it then"
                )
            if not is_test:
                _refuse_if_busy(session, kind, name, row.id, held)
            if row.attempt and row.status != "queued":
                _remember_attempt(row, now, row.error or row.status, row.error_kind or row.status)
            # Another attempt of a run keeps its version: the run decides whether files it
            # published already hold it to that version (see `execute`).
            kept = row.version if row.attempt else version
            _start(row, version=kept, now=now, worker=worker, until=held + lease.length)
            try:
                session.flush()
            except IntegrityError:
                raise StateError(f"{kind} {name!r} is already running for that time") from None
            return _run(row, [])

    def enqueue(self, session: Session, due: Sequence[DueRun]) -> int:
        """Queue the runs due, in the caller's transaction and one statement, except those that
        exist (a command may have started one of them meanwhile); how many were queued."""
        if not due:
            return 0
        rows = [
            _new_values(d.kind, d.name, d.version, utc(d.scheduled_for), False, d.trigger)
            for d in due
        ]
        # No savepoint: the unique index on the due time decides.
        if self._claims_in_one_statement:
            # PostgreSQL takes the rows as arrays, one per column: one short statement,
            # prepared once, however many runs a burst queues.
            columns = {name: [row[name] for row in rows] for name in QUEUED_COLUMNS}
            queued = session.connection().execute(QUEUE, columns)
        else:
            queued = session.connection().execute(
                sqlite.insert(RunRecord)
                .on_conflict_do_nothing(index_elements=DUE, index_where=text("NOT is_test"))
                .returning(RunRecord.id),
                rows,
            )
        return len(queued.all())

    def queue(self, due: DueRun, *, later_if_ended: bool = False) -> Run:
        """Queue one run for a worker to claim (a manual one, asked for over the API);
        StateError when its activation has a run due at that time already — unless
        `later_if_ended` and that run has ended: then the first later second that is free
        (two runs asked for in one second, the first one done, are two runs)."""
        with self._sessions() as session, session.begin():
            while not self.enqueue(session, [due]):
                taken = session.scalars(_due(due.kind, due.name, due.scheduled_for)).first()
                if not later_if_ended or taken is None or taken.status in ACTIVE:
                    raise StateError(
                        f"{due.kind} {due.name!r} has a run due at "
                        f"{utc(due.scheduled_for).isoformat()} already"
                        + (f" ({taken.status}, run {taken.id})" if taken is not None else "")
                    )
                due = replace(due, scheduled_for=due.scheduled_for + timedelta(seconds=1))
            row = session.scalars(_due(due.kind, due.name, due.scheduled_for)).one()
            return _run(row, [])

    def claim(
        self, *, worker: str, now: datetime, lease: LeaseTerms, max_attempts: int
    ) -> Run | None:
        """Take the oldest run that is ready: queued (past its back-off), or running under a
        lease that has expired (its worker died). None when there is nothing to do.

        A run waits while another run of its activation is running, or an earlier one of it is
        queued ("newly qualified" is measured run after run), and a scheduled run waits while
        its activation is paused or canceled. A test send whose process died is failed, never
        taken over (its sample size died with it); so is a run whose workers died
        `max_attempts` times."""
        now, held = utc(now), lease.now()
        ready = {"now": now, "lease_now": held}
        if self._claims_in_one_statement:
            # The common case in one statement: the oldest ready run is queued.
            started = {"worker": worker, "started": now, "until": held + lease.length}
            claimed = self._first_row(
                self._hot.start_queued, ready | started, answered=self._hot.started
            )
            if claimed is not None:
                return _run(claimed, [])
        with locked_session(self._sessions) as session:
            while (row := session.scalars(CLAIMABLE, ready).first()) is not None:
                if row.status == "running" and (row.is_test or row.attempt >= max_attempts):
                    _abandon(row, now)  # and look for the next one
                    session.flush()
                    continue
                if row.status == "running":
                    _remember_attempt(
                        row,
                        now,
                        f"its worker ({row.claimed_by}) stopped before it ended",
                        "abandoned",
                    )
                _start(row, version=row.version, now=now, worker=worker, until=held + lease.length)
                session.flush()
                return _run(row, [])
            return None

    def release(self, run: Run, worker: str) -> None:
        """Give back a run claimed but not begun, queued again as it was (see `RELEASE`);
        done twice (its answer lost), the second finds nothing to give back."""
        values = {"run_id": run.id} | _fence_values(Holder(worker, run.attempt))
        self._first_row(self._hot.release, values)

    def heartbeat(self, run_id: str, *, holder: Holder, lease: LeaseTerms) -> bool:
        """Renew a running run's lease; False when the run is no longer this attempt's."""
        try:
            return self._renew(run_id, holder=holder, until=lease.now() + lease.length)
        except SQLAlchemyError:
            return False  # the store is unreachable for now; the next beat tries again

    def _renew(self, run_id: str, *, holder: Holder, until: datetime) -> bool:
        with self._sessions() as session, session.begin():
            renewed = session.execute(
                update(RunRecord).where(*_fenced(run_id, holder)).values(lease_expires_at=until)
            )
            return bool(getattr(renewed, "rowcount", 0))

    def confirm(self, run_id: str, holder: Holder) -> None:
        """Raise LeaseLost unless the run is still running as `holder`'s attempt."""
        found = self._first_row(self._hot.holder, {"run_id": run_id})
        if found is None:
            raise NotFound(f"run {run_id} does not exist")
        if not _holds(holder, found.status, found.claimed_by, found.attempt):
            raise self._why_unchanged(run_id, holder)

    def set_version(self, run_id: str, version: int) -> None:
        """Record the definition version a run actually used (the newest when it ran)."""
        with self._sessions() as session, session.begin():
            _row(session, run_id).version = version

    def add_delivery(
        self, run_id: str, delivered: DeliveredFile, now: datetime, *, holder: Holder | None = None
    ) -> None:
        """Record one file as delivered (kept even if the run fails later); LeaseLost when
        `holder`'s attempt no longer holds the run."""
        values = {
            "run_id": run_id,
            "destination": delivered.destination,
            "sub_audience": delivered.sub_audience,
            "group_name": delivered.group,
            "role": delivered.role,
            "uri": delivered.uri,
            "rows": delivered.rows,
            "bytes": delivered.bytes,
            "sha256": delivered.sha256,
            "delivered_at": utc(now),
        }
        # One statement: the row is inserted only if the run, locked, is still the attempt's.
        added = self._first_row(
            self._hot.add_delivery[holder is not None], values | _fence_values(holder)
        )
        if added is None:
            with self._sessions() as session:
                if not (
                    _recorded(session, run_id, delivered) and _still_held(session, run_id, holder)
                ):
                    raise _fenced_out(session, run_id, holder)

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        now: datetime,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
        kind_of_error: str | None = None,
        holder: Holder | None = None,
        deliveries: list[DeliveredFile] | None = None,
        then_claim: NextClaim | None = None,
    ) -> Run:
        """Close a run as succeeded, failed or canceled (as `holder`'s attempt, when given:
        LeaseLost if the run is no longer its). `deliveries`, when the caller is the attempt
        that recorded them all, saves reading them back. `then_claim`: a worker's successful
        end also claims its next queued run, in the same statement (PostgreSQL; elsewhere the
        worker claims it next as usual)."""
        if (
            then_claim is not None
            and self._claims_in_one_statement
            and status == "succeeded"
            and holder is not None
            and counts is not None
        ):
            return self._finish_and_claim(run_id, now, counts, holder, deliveries, then_claim)
        values: dict[str, Any] = {
            "run_id": run_id,
            "new_status": status,
            "ended": utc(now),
            "new_error": error,
            "new_error_kind": kind_of_error if error is not None else None,
            "new_counts": counts,
        }
        statement = self._hot.finish[holder is not None, counts is not None]
        # One statement: the fence is checked on the row as it is updated (locked).
        row = self._first_row(
            statement, values | _fence_values(holder), answered=self._hot.finished
        )
        if row is None:
            raise self._why_unchanged(run_id, holder)
        if deliveries is None:
            with self._sessions() as session:
                deliveries = _deliveries(session, run_id)
        return _run(row, deliveries)

    def _finish_and_claim(
        self,
        run_id: str,
        now: datetime,
        counts: dict[str, Any],
        holder: Holder,
        deliveries: list[DeliveredFile] | None,
        claim: NextClaim,
    ) -> Run:
        """Close `holder`'s attempt as succeeded and, in the same statement, claim the oldest
        queued run for `claim`, which then holds it in `claimed`. LeaseLost, and no claim, if
        the run is no longer the attempt's. An answer lost on the way is asked for again: the
        end is found, and the claim with it, rather than made twice."""
        started, held = utc(claim.clock()), claim.lease.now()
        values: dict[str, Any] = {
            "run_id": run_id,
            "new_status": "succeeded",
            "ended": utc(now),
            "new_error": None,
            "new_error_kind": None,
            "new_counts": counts,
            "now": started,
            "lease_now": held,
            "worker": claim.worker,
            "started": started,
            "until": held + claim.lease.length,
        } | _fence_values(holder)

        def written(connection: Connection) -> dict[str, Any]:
            return {row.role: row for row in self._hot.finish_and_claim.rows(connection, values)}

        def found(connection: Connection) -> dict[str, Any] | None:
            ended = next(iter(self._hot.finished.rows(connection, values)), None)
            if ended is None:
                return None
            taken = next(iter(self._hot.started.rows(connection, values)), None)
            return {"ended": ended} | ({} if taken is None else {"started": taken})

        rows = self._once(written, found) or {}
        if "ended" not in rows:
            raise self._why_unchanged(run_id, holder)
        claim.claimed = _run(rows["started"], []) if "started" in rows else None
        if deliveries is None:
            with self._sessions() as session:
                deliveries = _deliveries(session, run_id)
        return _run(rows["ended"], deliveries)

    def fail(
        self,
        run_id: str,
        error: BaseException,
        *,
        now: datetime,
        counts: dict[str, Any],
        holder: Holder | None = None,
    ) -> Run:
        """Close a run as failed, keeping the error's kind and message."""
        message = str(error) if isinstance(error, AudienceError) else repr(error)
        return self.finish(
            run_id,
            status="failed",
            now=now,
            counts=counts,
            error=message,
            kind_of_error=error_kind(error),
            holder=holder,
        )

    def postpone(
        self,
        run_id: str,
        error: BaseException,
        *,
        now: datetime,
        until: datetime,
        counts: dict[str, Any],
        holder: Holder | None = None,
    ) -> Run:
        """Queue a run again after a transient failure, to be retried from `until`; the failed
        attempt is kept in `retries`."""
        now, until = utc(now), utc(until)
        with locked_session(self._sessions) as session:
            row = _held(_locked_row(session, run_id), holder)
            _remember_attempt(row, now, str(error), error_kind(error))
            canceled = session.get(ActivationRecord, (row.activation_kind, row.activation_name))
            row.status = (
                "canceled"
                if row.trigger == "schedule"
                and canceled is not None
                and canceled.state == "canceled"
                else "queued"
            )
            row.not_before = until
            row.claimed_by = None
            row.lease_expires_at = None
            row.counts = counts
            row.error = str(error)
            row.error_kind = error_kind(error)
            session.flush()
            return _run(row, _deliveries(session, run_id))

    def restart(self, run_id: str, *, worker: str, now: datetime, lease: LeaseTerms) -> Run:
        """Start a failed (or canceled) run again now, as its next attempt for the same due
        time, in one transaction (no worker can take it in between)."""
        now, held = utc(now), lease.now()
        with locked_session(self._sessions) as session:
            row = _retryable(session, run_id)
            _refuse_if_busy(session, row.activation_kind, row.activation_name, row.id, held)
            _remember_attempt(row, now, row.error or row.status, row.error_kind or row.status)
            _start(row, version=row.version, now=now, worker=worker, until=held + lease.length)
            session.flush()
            return _run(row, [])

    def requeue(self, run_id: str, *, now: datetime) -> Run:
        """Queue a failed (or canceled) run again, for a worker to claim as its next attempt
        for the same due time (the API's retry, which answers before the run has ended)."""
        now = utc(now)
        with locked_session(self._sessions) as session:
            row = _retryable(session, run_id)
            _remember_attempt(row, now, row.error or row.status, row.error_kind or row.status)
            row.status, row.ended_at, row.not_before = "queued", None, None
            row.claimed_by, row.lease_expires_at = None, None
            session.flush()
            return _run(row, [])

    def cancel(self, run_id: str, *, now: datetime, lease: LeaseTerms) -> Run:
        """Mark a queued or failed run, or a running one whose lease has expired, canceled."""
        now, held = utc(now), lease.now()
        with locked_session(self._sessions) as session:
            row = _row(session, run_id)
            if row.status == "succeeded" or row.status == "canceled":
                raise StateError(f"run {row.id} is {row.status}; there is nothing to cancel")
            if row.status == "running" and not _expired(row, held):
                raise StateError(
                    f"run {row.id} is running on {row.claimed_by} (its lease runs until "
                    f"{_utc(row.lease_expires_at or held)}); cancel it once the lease has expired"
                )
            row.status = "canceled"
            row.ended_at = now
            row.claimed_by = None
            row.lease_expires_at = None
            session.flush()
            return _run(row, _deliveries(session, run_id))

    def cancel_queued(
        self, kind: str, name: str, *, now: datetime, scheduled_before: datetime | None = None
    ) -> int:
        """Cancel every queued run of an activation — or, `scheduled_before` a moment, only the
        runs its schedule queued for times before it; how many there were."""
        now = utc(now)
        which = [
            RunRecord.activation_kind == kind,
            RunRecord.activation_name == name,
            RunRecord.status == "queued",
        ]
        if scheduled_before is not None:
            which += [
                RunRecord.trigger == "schedule",
                RunRecord.scheduled_for < utc(scheduled_before),
            ]
        with self._sessions() as session, session.begin():
            canceled = session.execute(
                update(RunRecord).where(*which).values(status="canceled", ended_at=now)
            )
            return int(getattr(canceled, "rowcount", 0))

    def get(self, run_id: str) -> Run:
        """One run with its deliveries."""
        with self._sessions() as session:
            row = _row(session, run_id)
            return _run(row, _deliveries(session, run_id))

    def find(self, prefix: str) -> Run:
        """The run whose id is or starts with `prefix` (lists show the first 12 characters)."""
        if len(prefix) < 6:
            raise NotFound(f"run {prefix!r} does not exist; give at least 6 characters of its id")
        with self._sessions() as session:
            rows = list(
                session.scalars(select(RunRecord).where(RunRecord.id.startswith(prefix)).limit(2))
            )
            if len(rows) != 1:
                raise NotFound(
                    f"run {prefix!r} does not exist"
                    if not rows
                    else f"{prefix!r} starts more than one run id; give more of it"
                )
            return _run(rows[0], _deliveries(session, rows[0].id))

    def history(
        self,
        name: str | None = None,
        kind: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Run]:
        """Runs, newest first (of one activation when named, of one status when given); a
        page of them with `limit` and `offset`, read as a page (a run log grows for ever)."""
        query = select(RunRecord).order_by(
            RunRecord.scheduled_for.desc(), RunRecord.started_at.desc()
        )
        if name is not None:
            query = query.where(RunRecord.activation_name == name)
        if kind is not None:
            query = query.where(RunRecord.activation_kind == kind)
        if status is not None:
            query = query.where(RunRecord.status == status)
        query = query.offset(offset).limit(limit)
        with self._sessions() as session:
            return [_run(row, _deliveries(session, row.id)) for row in session.scalars(query)]

    def latest(
        self, kind: str, name: str, *, succeeded: bool = False, happened: bool = False
    ) -> Run | None:
        """The activation's newest real run by due time (or its newest success, or its newest
        run that was not canceled), if any."""
        query = (
            select(RunRecord)
            .where(
                RunRecord.activation_kind == kind,
                RunRecord.activation_name == name,
                RunRecord.is_test.is_(False),
                *((RunRecord.status == "succeeded",) if succeeded else ()),
                *((RunRecord.status != "canceled",) if happened else ()),
            )
            .order_by(RunRecord.scheduled_for.desc())
            .limit(1)
        )
        with self._sessions() as session:
            row = session.scalars(query).first()
            return _run(row, []) if row is not None else None

    def successes(self, kind: str, name: str, *, since: datetime | None = None) -> list[str]:
        """Ids of the activation's successful real runs, oldest first (due at or after `since`
        when given)."""
        query = (
            select(RunRecord.id)
            .where(
                RunRecord.activation_kind == kind,
                RunRecord.activation_name == name,
                RunRecord.status == "succeeded",
                RunRecord.is_test.is_(False),
            )
            .order_by(RunRecord.scheduled_for, RunRecord.started_at)
        )
        if since is not None:
            query = query.where(RunRecord.scheduled_for >= utc(since))
        with self._sessions() as session:
            return list(session.scalars(query))

    def counted_runs(self, name: str, kind: str | None = None) -> list[CountedRun]:
        """The successful real runs of activations of that name (of one kind when given),
        oldest first by due time: the runs whose ledger rows results and `sent` conditions
        trust."""
        query = (
            select(RunRecord.id, RunRecord.activation_kind, RunRecord.scheduled_for)
            .where(
                RunRecord.activation_name == name,
                RunRecord.status == "succeeded",
                RunRecord.is_test.is_(False),
            )
            .order_by(RunRecord.scheduled_for, RunRecord.started_at)
        )
        if kind is not None:
            query = query.where(RunRecord.activation_kind == kind)
        with self._sessions() as session:
            return [CountedRun(i, k, aware(due)) for i, k, due in session.execute(query)]

    def success_counts(
        self, session: Session | None = None, among: Collection[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str], int]:
        """For every activation on a schedule (or those `among`): its successful real runs
        since the schedule took effect, by (kind, name) — one query for what `successes` tells
        of one; in the caller's transaction when given one."""
        query = (
            select(RunRecord.activation_kind, RunRecord.activation_name, func.count())
            .join(
                ActivationRecord,
                and_(
                    ActivationRecord.kind == RunRecord.activation_kind,
                    ActivationRecord.name == RunRecord.activation_name,
                    RunRecord.scheduled_for >= ActivationRecord.since,
                ),
            )
            .where(RunRecord.status == "succeeded", RunRecord.is_test.is_(False))
            .group_by(RunRecord.activation_kind, RunRecord.activation_name)
        )
        if among is not None:
            query = query.where(
                tuple_(RunRecord.activation_kind, RunRecord.activation_name).in_(list(among))
            )
        if session is not None:
            return {(kind, name): int(n) for kind, name, n in session.execute(query)}
        with self._sessions() as own:
            return {(kind, name): int(n) for kind, name, n in own.execute(query)}

    def refresh_statistics(self) -> None:
        """Let the database's planner see the runs as they are now (after a burst of queued
        runs: PostgreSQL plans claims from statistics that, until its autovacuum comes by,
        still describe the table before the burst, and the claim of each run then reads every
        queued run once per queued run)."""
        with self._sessions() as session, session.begin():
            session.execute(text(f"ANALYZE {RunRecord.__tablename__}"))

    def active(self, kind: str, name: str) -> list[Run]:
        """The activation's queued and running runs, oldest first."""
        query = (
            select(RunRecord)
            .where(
                RunRecord.activation_kind == kind,
                RunRecord.activation_name == name,
                RunRecord.status.in_(ACTIVE),
            )
            .order_by(RunRecord.scheduled_for)
        )
        with self._sessions() as session:
            return [_run(row, []) for row in session.scalars(query)]


def _fence_values(holder: Holder | None) -> dict[str, Any]:
    """The parameters of a statement fenced by `holder` (none when it is not fenced)."""
    return {} if holder is None else {"holder": holder.worker, "holders_attempt": holder.attempt}


def _due(kind: str, name: str, scheduled_for: datetime) -> Any:
    return select(RunRecord).where(
        RunRecord.activation_kind == kind,
        RunRecord.activation_name == name,
        RunRecord.scheduled_for == utc(scheduled_for),
        RunRecord.is_test.is_(False),
    )


def _new_row(
    kind: str, name: str, version: int, scheduled_for: datetime, is_test: bool, trigger: str
) -> RunRecord:
    return RunRecord(**_new_values(kind, name, version, scheduled_for, is_test, trigger))


def _new_values(
    kind: str, name: str, version: int, scheduled_for: datetime, is_test: bool, trigger: str
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "activation_kind": kind,
        "activation_name": name,
        "version": version,
        "scheduled_for": scheduled_for,
        "status": "queued",
        "is_test": is_test,
        "attempt": 0,
        "counts": {},
        "trigger": trigger,
    }


def _start(row: RunRecord, *, version: int, now: datetime, worker: str, until: datetime) -> None:
    row.attempt = (row.attempt or 0) + 1
    row.status = "running"
    row.version = version
    row.started_at = now
    row.ended_at = None
    row.claimed_by = worker
    row.lease_expires_at = until
    row.not_before = None


def _retryable(session: Session, run_id: str) -> RunRecord:
    """The run, locked, if it may be retried: StateError for a success, an active run or a test."""
    row = _locked_row(session, run_id)
    if row.status == "succeeded":
        raise StateError(f"run {row.id} succeeded; there is nothing to retry")
    if row.status == "running":
        raise StateError(
            f"run {row.id} is running already (on {row.claimed_by}, its lease until "
            f"{_utc(row.lease_expires_at or row.started_at or row.scheduled_for)}); if that "
            "worker died, a worker takes it over once the lease expires, or `audience runs "
            "cancel` ends it then and it can be retried"
        )
    if row.status in ACTIVE:
        raise StateError(f"run {row.id} is {row.status} already")
    if row.is_test:
        raise StateError(f"run {row.id} was a test send; send a new test instead")
    return row


def _refuse_if_busy(session: Session, kind: str, name: str, run_id: str, held: datetime) -> None:
    """Refuse to start a run while another run of the activation is running (its "newly
    qualified" would be measured against the same last success, and both would send)."""
    running = session.scalars(
        select(RunRecord).where(
            RunRecord.activation_kind == kind,
            RunRecord.activation_name == name,
            RunRecord.id != run_id,
            RunRecord.status == "running",
            RunRecord.lease_expires_at >= held,
            RunRecord.is_test.is_(False),
        )
    ).first()
    if running is not None:
        raise StateError(
            f"{kind} {name!r} is running already (run {running.id}, due "
            f"{_utc(running.scheduled_for)}); try again when it has ended"
        )


def _remember_attempt(row: RunRecord, now: datetime, error: str, kind: str) -> None:
    """Keep an attempt that did not succeed in the run's `retries`, before the next one."""
    row.retries = [
        *(row.retries or []),
        {"attempt": row.attempt, "at": _utc(now), "error": error, "error_kind": kind},
    ]


def _abandon(row: RunRecord, now: datetime) -> None:
    """Fail a running run whose process died and that must not be taken over."""
    row.status = "failed"
    row.ended_at = now
    row.error_kind = "abandoned"
    row.error = (
        "the test send's process stopped before it ended"
        if row.is_test
        else f"its worker stopped {row.attempt} times before it ended; not taken over again"
    )
    row.claimed_by = None
    row.lease_expires_at = None


def _expired(row: RunRecord, held: datetime) -> bool:
    return row.lease_expires_at is None or aware(row.lease_expires_at) < held


def _locked_row(session: Session, run_id: str) -> RunRecord:
    row = session.get(RunRecord, run_id, with_for_update=True)
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    return row


def _held(row: RunRecord, holder: Holder | None) -> RunRecord:
    """The row, if `holder` (when given) still runs it; LeaseLost otherwise."""
    if holder is not None and not _holds(holder, row.status, row.claimed_by, row.attempt):
        raise _lost(row, holder)
    return row


def _holds(holder: Holder, status: str, worker: str | None, attempt: int) -> bool:
    return status == "running" and worker == holder.worker and attempt == holder.attempt


def _fenced(run_id: str, holder: Holder | None) -> list[Any]:
    """The run's row, while `holder` (when given) holds it: `_holds` as conditions, for a write
    fenced in its own statement."""
    if holder is None:
        return [RunRecord.id == run_id]
    return [
        RunRecord.id == run_id,
        RunRecord.status == "running",
        RunRecord.claimed_by == holder.worker,
        RunRecord.attempt == holder.attempt,
    ]


def _recorded(session: Session, run_id: str, delivered: DeliveredFile) -> bool:
    """Whether the run log holds this file of this run."""
    return (
        session.scalar(
            select(
                exists().where(
                    DeliveryRecord.run_id == run_id,
                    DeliveryRecord.uri == delivered.uri,
                    DeliveryRecord.sha256 == delivered.sha256,
                )
            )
        )
        is True
    )


def _still_held(session: Session, run_id: str, holder: Holder | None) -> bool:
    """Whether the run is there and, when `holder` is given, still its attempt's."""
    row = session.get(RunRecord, run_id)
    return row is not None and (
        holder is None or _holds(holder, row.status, row.claimed_by, row.attempt)
    )


def _fenced_out(session: Session, run_id: str, holder: Holder | None) -> AudienceError:
    """Why a write fenced by `holder` changed no row: the run is not there, or no longer the
    attempt's."""
    row = session.get(RunRecord, run_id)
    if row is None or holder is None:
        return NotFound(f"run {run_id} does not exist")
    return _lost(row, holder)


def _lost(row: RunRecord, holder: Holder) -> LeaseLost:
    return LeaseLost(
        f"run {row.id} is no longer attempt {holder.attempt} on {holder.worker}: it is "
        f"{row.status} (attempt {row.attempt}, on {row.claimed_by or 'no worker'})"
    )


def _row(session: Session, run_id: str) -> RunRecord:
    row = session.get(RunRecord, run_id)
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    return row


def _deliveries(session: Session, run_id: str) -> list[DeliveredFile]:
    rows = session.execute(
        select(*DeliveryRecord.__table__.columns)
        .where(DeliveryRecord.run_id == run_id)
        .order_by(DeliveryRecord.id)
    )
    return [
        DeliveredFile(
            r.destination, r.uri, r.rows, r.bytes, r.sha256, r.sub_audience, r.group_name, r.role
        )
        for r in rows
    ]


def _run(row: Any, deliveries: list[DeliveredFile]) -> Run:
    """The run a row of the run log holds: an ORM record, or a row of its columns (SQLAlchemy's,
    or a named tuple from `HotPath`)."""
    return Run(
        id=row.id,
        activation_kind=row.activation_kind,
        activation_name=row.activation_name,
        version=row.version,
        scheduled_for=aware(row.scheduled_for),
        started_at=aware(row.started_at) if row.started_at is not None else None,
        ended_at=aware(row.ended_at) if row.ended_at is not None else None,
        status=row.status,
        is_test=row.is_test,
        attempt=row.attempt,
        counts=dict(row.counts or {}),
        error=row.error,
        error_kind=row.error_kind,
        trigger=row.trigger,
        claimed_by=row.claimed_by,
        lease_expires_at=aware(row.lease_expires_at) if row.lease_expires_at else None,
        not_before=aware(row.not_before) if row.not_before else None,
        retries=list(row.retries or []),
        deliveries=deliveries,
    )


def utc(moment: datetime) -> datetime:
    """A time as the store keeps it: in UTC (SQLite keeps no zone, so values compare as text)."""
    return aware(moment).astimezone(UTC)


def _utc(moment: datetime) -> str:
    return utc(moment).isoformat()
