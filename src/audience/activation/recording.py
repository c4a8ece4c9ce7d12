"""Recording one attempt of a run, the same for every kind of activation.

Whoever starts the attempt (a command, or a worker that claimed the run) hands the activation a
`RunRecording`: the activation reports each file as it is delivered and its counts as they become
known; `record` renews the run's lease while the work goes on, then closes the run as succeeded,
failed (with the error's kind), or — for a transient failure the retry policy allows — queued
again after a back-off.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audience.delivery.destinations.base import Delivery, EarlierFile
from audience.errors import AudienceError, LeaseLost, TransientError
from audience.store.runs import DeliveredFile, Holder, LeaseTerms, NextClaim, Run, RunLog

Clock = Callable[[], datetime]

HELD_JUST_NOW = 1.0
"""Seconds for which the run log's answer to a write fenced by this attempt (a file's record)
stands as its answer to `confirm` (and never more than a third of the lease): either is what
the run log said a moment ago, and for the run to be taken over within that moment its lease
would have had to be nearly lapsed while its heartbeat, every third of the lease, kept
renewing it."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: up to `max_attempts` attempts in all, waiting
    between half and all of `base × 2^(attempt-1)` (at most `cap`; "equal jitter"), and never
    less than a destination's retry-after hint (itself at most `cap`: a server cannot park a
    run for a year)."""

    max_attempts: int = 5
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    jitter: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int, hint: float | None = None) -> timedelta:
        """The wait before attempt `attempt + 1`."""
        ceiling = min(self.base * (1 << min(max(attempt - 1, 0), 30)), self.cap)
        wait = ceiling * (0.5 + 0.5 * self.jitter())  # jitter spreads retries of many runs
        return max(wait, min(timedelta(seconds=hint or 0), self.cap))


@dataclass
class RunRecording:
    """One attempt of a run as it goes."""

    runs: RunLog
    run: Run
    clock: Clock
    worker: str
    lease: LeaseTerms
    counts: dict[str, Any] = field(default_factory=dict)
    """What the run knows so far (a failed run keeps it: the plan, once known)."""
    earlier: dict[str, DeliveredFile] = field(default_factory=dict)
    """Files earlier attempts of this run published, by URI: the run log remembers them, so a
    retry never sends them again (even once the receiver has taken them away)."""
    recorded: list[DeliveredFile] = field(default_factory=list)
    """Every file the run log holds for this run, once this attempt knows them all: the earlier
    attempts' (read at its start) and its own, in the order they were recorded."""
    held_at: float | None = None
    """When (monotonic seconds) the run log last accepted a write fenced by this attempt."""
    then_claim: NextClaim | None = None
    """A worker's claim of its next run, made with this run's end when it succeeds."""
    _in_flight: _FileRecord | None = field(default=None, repr=False)
    """The file record being written while the run goes on (`delivered`)."""

    @property
    def holder(self) -> Holder:
        """This attempt, as the run log fences what it records."""
        return Holder(self.worker, self.run.attempt)

    def delivered(self, file: DeliveredFile) -> None:
        """A file is published: record it at once, so it is known even if the run fails.

        The record is written on a thread of its own while the run goes on (its next query, its
        ledger), so the round trip to the run log costs the run no time; `settle` waits for it,
        and raises what it met — LeaseLost (which stops the attempt) if another worker has
        taken the run over. The run settles before it publishes anything else (`deliver`'s
        `before_publish`), before its ledger commits (`confirm`) and before it ends: no file
        is published, and nothing committed, past a record the run log refused."""
        self.settle()
        record = _FileRecord(self, file)
        self._in_flight = record
        record.start()

    def settle(self) -> None:
        """Wait for the file record in flight, if any; raise what writing it met."""
        record = self._in_flight
        if record is None:
            return
        record.join()
        self._in_flight = None  # only once it has ended: an interrupted wait waits again
        if record.error is not None:
            raise record.error
        self.held_at = record.asked
        self.recorded.append(record.file)

    def published(
        self, delivery: Delivery, *, sub_audience: str | None = None, group: str | None = None
    ) -> DeliveredFile:
        """A file `deliver` published (or found published by an earlier attempt): recorded at
        once, unless the run log has it already."""
        if delivery.earlier:
            return self.earlier[delivery.uri]
        file = DeliveredFile(
            destination=delivery.destination,
            uri=delivery.uri,
            rows=delivery.rows,
            bytes=delivery.bytes,
            sha256=delivery.sha256,
            sub_audience=sub_audience,
            group=group,
            role=delivery.role,
        )
        self.delivered(file)
        return file

    def earlier_files(self) -> dict[str, EarlierFile]:
        """What earlier attempts published, by URI, as `deliver` takes it."""
        return {
            uri: EarlierFile(uri=file.uri, rows=file.rows, bytes=file.bytes, sha256=file.sha256)
            for uri, file in self.earlier.items()
        }

    def confirm(self) -> None:
        """Raise LeaseLost if another worker has taken the run over: an activation calls this
        before it commits state outside the run log (the recipients ledger), which the attempt
        that took over writes for itself. A file's record accepted just now (`HELD_JUST_NOW`)
        answers without asking again: a run's last file is recorded while its ledger is
        written, right before this."""
        self.settle()
        moment = min(HELD_JUST_NOW, self.lease.length.total_seconds() / 3)
        if self.held_at is not None and time.monotonic() - self.held_at < moment:
            return
        asked = time.monotonic()
        self.runs.confirm(self.run.id, self.holder)
        self.held_at = asked

    def record(
        self,
        work: Callable[[RunRecording], dict[str, Any]],
        *,
        retry: RetryPolicy | None = None,
        heartbeat_every: float | None = None,
    ) -> Run:
        """Do `work` (which returns the final counts) under a heartbeat, then close the run.

        An `AudienceError` fails the run (or postpones it, when transient and `retry` allows
        another attempt); any other exception is a bug: the run is failed and it is re-raised.
        An attempt whose run another worker has taken over (LeaseLost) records nothing more:
        the run as the other attempt leaves it is returned.
        """
        if self.run.attempt > 1:
            self.recorded = list(self.runs.get(self.run.id).deliveries)
            self.earlier = {d.uri: d for d in self.recorded}
        beat = _Heartbeat(self, heartbeat_every or self.lease.length.total_seconds() / 3)
        beat.start()
        try:
            counts = work(self)
            self.settle()
        except BaseException as error:
            failure = self._abandon(error)
            beat.stop()
            if isinstance(failure, AudienceError):
                return self._closed(functools.partial(self._failed, failure, retry))
            with contextlib.suppress(LeaseLost):
                self.runs.fail(
                    self.run.id, failure, now=self.clock(), counts=self.counts, holder=self.holder
                )
            if failure is error:
                raise
            raise failure from error  # the file's record failed first; the run went on
        beat.stop()
        return self._closed(
            lambda: self.runs.finish(
                self.run.id,
                status="succeeded",
                now=self.clock(),
                counts=counts,
                holder=self.holder,
                deliveries=self.recorded,
                then_claim=self.then_claim,
            )
        )

    def _abandon(self, error: BaseException) -> BaseException:
        """Let a file record in flight end before the run is closed as failed; what the run
        failed of: the record's own failure, if it had one (it came first: the run went on
        without waiting for it), unless the run was interrupted."""
        try:
            self.settle()
        except Exception as unrecorded:
            return unrecorded if isinstance(error, Exception) else error
        return error

    def _closed(self, close: Callable[[], Run]) -> Run:
        try:
            return close()
        except LeaseLost:
            return self.runs.get(self.run.id)

    def _failed(self, error: AudienceError, retry: RetryPolicy | None) -> Run:
        now = self.clock()
        if (
            isinstance(error, TransientError)
            and retry is not None
            and self.run.attempt < retry.max_attempts
        ):
            wait = retry.delay(self.run.attempt, error.retry_after)
            return self.runs.postpone(
                self.run.id,
                error,
                now=now,
                until=now + wait,
                counts=self.counts,
                holder=self.holder,
            )
        return self.runs.fail(self.run.id, error, now=now, counts=self.counts, holder=self.holder)


class _FileRecord(threading.Thread):
    """One published file's record, written to the run log on a thread of its own."""

    def __init__(self, recording: RunRecording, file: DeliveredFile) -> None:
        super().__init__(name="audience-file-record", daemon=True)
        self.recording = recording
        self.file = file
        self.at = recording.clock()
        """When the file was published (read here: clocks belong to the run's thread)."""
        self.asked = time.monotonic()
        """When it was asked for: the run log's answer is as old as the question."""
        self.error: BaseException | None = None

    def run(self) -> None:
        recording = self.recording
        try:
            recording.runs.add_delivery(
                recording.run.id, self.file, self.at, holder=recording.holder
            )
        except BaseException as error:  # raised to the run by `settle`
            self.error = error


class _Heartbeat:
    """Renews a run's lease on a thread while the run works (real time between beats, and the
    lease's expiry on its own clock)."""

    def __init__(self, recording: RunRecording, every: float) -> None:
        self._recording = recording
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="audience-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        recording = self._recording
        while not self._stopped.wait(self._every):
            # A lost lease (another worker took the run over) is not ours to fix here: the
            # other attempt publishes under the same run id, so nothing is sent twice.
            recording.runs.heartbeat(
                recording.run.id,
                holder=recording.holder,
                lease=recording.lease,
            )
