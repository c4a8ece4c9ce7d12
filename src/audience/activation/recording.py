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
from audience.errors import AudienceError, LeaseLost, TransientDeliveryError
from audience.store.runs import DeliveredFile, Holder, LeaseTerms, NextClaim, Run, RunLog

Clock = Callable[[], datetime]

HELD_JUST_NOW = 1.0
"""Seconds for which the run log's answer to a write fenced by this attempt (a file's record)
stands as its answer to `confirm`: either is what the run log said a moment ago, and the
ledger's write after it takes longer than that moment."""


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

    @property
    def holder(self) -> Holder:
        """This attempt, as the run log fences what it records."""
        return Holder(self.worker, self.run.attempt)

    def delivered(self, file: DeliveredFile) -> None:
        """A file is published: record it at once, so it is known even if the run fails.
        LeaseLost (which stops the attempt) if another worker has taken the run over."""
        asked = time.monotonic()  # the answer is as old as the question
        self.runs.add_delivery(self.run.id, file, self.clock(), holder=self.holder)
        self.held_at = asked
        self.recorded.append(file)

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
        before writing state outside the run log (the recipients ledger), which the attempt
        that took over writes for itself. A file's record accepted just now (`HELD_JUST_NOW`)
        answers without asking again: a run's last file is recorded right before this."""
        if self.held_at is not None and time.monotonic() - self.held_at < HELD_JUST_NOW:
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
        except AudienceError as error:
            beat.stop()
            return self._closed(functools.partial(self._failed, error, retry))
        except BaseException as error:
            beat.stop()
            with contextlib.suppress(LeaseLost):
                self.runs.fail(
                    self.run.id, error, now=self.clock(), counts=self.counts, holder=self.holder
                )
            raise
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

    def _closed(self, close: Callable[[], Run]) -> Run:
        try:
            return close()
        except LeaseLost:
            return self.runs.get(self.run.id)

    def _failed(self, error: AudienceError, retry: RetryPolicy | None) -> Run:
        now = self.clock()
        if (
            isinstance(error, TransientDeliveryError)
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
