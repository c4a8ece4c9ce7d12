"""When a schedule is due, and what a worker should run now (SPEC §7).

Pure: every answer comes from the schedule, what the run log says about it (`ScheduleHistory`)
and an explicit moment. Times in and out are timezone-aware; results are in UTC.

A schedule's due times:

- `once: asap` — one, the moment the schedule took effect (`ScheduleHistory.since`);
- `once: T` — one, at T;
- repeating (`recurring`, `every`) — the rule's times (see `timelines` for daylight saving),
  none before `start` (a date means local midnight) nor before the schedule took effect (a
  schedule never owes runs from before it was applied), none after the `end.on` day, and none
  once `end.after` runs have succeeded. `every` counts from `start`, else from `since`.

Catch-up, for due times that passed while nothing ran them (a stopped worker, a clock that jumped),
by the schedule's `catch_up`:

- `latest` (default) — one run, for the most recent missed due time;
- `all` — every missed due time, oldest first, at most CATCH_UP_LIMIT in one call (the rest come
  on later calls, once `last_due` has moved on);
- `skip` — none of them: only a due time at most SKIP_GRACE old runs, so a worker that polls every
  few minutes, or restarts, still makes each on-time run.

A one-time schedule runs however late it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import islice, takewhile

from audience.definitions.schedule import Interval, Recurring, Schedule
from audience.scheduling.timelines import Times, instant_of, timeline

CATCH_UP_LIMIT = 1000
"""At most this many missed due times are returned by one `due_times` call under `catch_up: all`."""
SKIP_GRACE = timedelta(hours=1)
"""Under `catch_up: skip`, how late a due time may be picked up and still run."""
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class ScheduleHistory:
    """What the run log says about a schedule; the worker reads it and passes it in.

    `since`: when the schedule took effect (the activation was applied or enabled); nothing is
    due before it, and `once: asap` is due at it. `runs`: how many runs succeeded (counted
    against `end.after`). `last_due`: the newest due time a run was made for, whatever its
    outcome (retrying a failed run is the worker's business); nothing at or before it is due
    again.
    """

    since: datetime
    runs: int = 0
    last_due: datetime | None = None
    upstream: datetime | None = None
    """For an `after` schedule: the due time of the upstream activation's newest successful
    run since `since` (None if none); this run is due at it, once."""


def next_due(schedule: Schedule, *, after: datetime, history: ScheduleHistory) -> datetime | None:
    """The first due time strictly after `after`, or None when there is none: a one-time
    schedule that has run (or whose time is not after `after`), an end date passed,
    `end.after` runs done, or a next time past the end of the calendar (year 9999). Stepping
    `after` through the results lists the due times."""
    after = _utc(after, "after")
    if schedule.after is not None:
        return None  # when the upstream activation next succeeds, nobody can say
    rule = schedule.repeating
    if rule is None:
        due = _once(schedule, history)
        return due if due is not None and due > after else None
    span = _Span.of(rule, history)
    if span.runs_left is not None and span.runs_left <= 0:
        return None
    due = next(span.times.after(max(after, span.first - _TICK)), None)  # None: past year 9999
    return due if due is not None and (span.end is None or due < span.end) else None


def due_times(
    schedule: Schedule | None, *, history: ScheduleHistory, now: datetime
) -> list[datetime]:
    """The due times a worker should run at `now`, oldest first: those after `history.last_due`
    and at or before `now`, as the catch-up policy keeps them (see the module's docstring), and
    never more than the runs `end.after` leaves. An activation without a schedule (run by
    hand) is never due."""
    now = _utc(now, "now")
    if schedule is None:
        return []
    if schedule.after is not None:
        due = history.upstream
        fresh = due is not None and (history.last_due is None or due > history.last_due)
        return [due] if fresh and due is not None and due <= now else []
    rule = schedule.repeating
    if rule is None:
        due = _once(schedule, history)
        return [due] if due is not None and due <= now else []
    span = _Span.of(rule, history)
    wanted = CATCH_UP_LIMIT if span.runs_left is None else min(CATCH_UP_LIMIT, span.runs_left)
    if wanted <= 0:
        return []
    low = span.first - _TICK  # exclusive bound, like last_due
    if history.last_due is not None:
        low = max(low, _utc(history.last_due, "last_due"))
    high = now if span.end is None else min(now, span.end - _TICK)
    if rule.catch_up == "all":
        return list(islice(takewhile(lambda due: due <= high, span.times.after(low)), wanted))
    latest = next(span.times.until(high), None)
    if latest is None or latest <= low:
        return []
    if rule.catch_up == "skip" and now - latest > SKIP_GRACE:
        return []
    return [latest]


def next_run(
    schedule: Schedule | None, *, history: ScheduleHistory, now: datetime
) -> datetime | None:
    """When a worker will next run the schedule, for status pages: the oldest due time it would
    run at `now` (so at or before `now`), else the next due time after `now`; None once the
    schedule has ended, or without a schedule."""
    if schedule is None:
        return None
    due = due_times(schedule, history=history, now=now)
    return due[0] if due else next_due(schedule, after=now, history=history)


@dataclass(frozen=True)
class _Span:
    """A repeating rule's due times with its bounds applied."""

    times: Times
    first: datetime
    """The earliest due time allowed (inclusive)."""
    end: datetime | None
    """The first instant after the end date (exclusive)."""
    runs_left: int | None

    @classmethod
    def of(cls, rule: Recurring | Interval, history: ScheduleHistory) -> _Span:
        since = _utc(history.since, "since")
        start = _start(rule)
        first = since if start is None else max(start, since)
        end, runs_left = None, None
        if rule.end is not None and rule.end.on is not None:
            end = instant_of(datetime.combine(rule.end.on + timedelta(days=1), time()), rule.zone)
        if rule.end is not None and rule.end.after is not None:
            runs_left = rule.end.after - history.runs
        return cls(timeline(rule, anchor=start or since), first, end, runs_left)


def _start(rule: Recurring | Interval) -> datetime | None:
    start = rule.start
    if start is None:
        return None
    if not isinstance(start, datetime):
        return instant_of(datetime.combine(start, time()), rule.zone)
    if start.tzinfo is not None and start.utcoffset() is not None:
        return start.astimezone(UTC)
    return instant_of(start, rule.zone)  # a date-time without an offset is the schedule's


def _once(schedule: Schedule, history: ScheduleHistory) -> datetime | None:
    """The one due time of a one-time schedule, or None once it has run."""
    if history.runs > 0 or history.last_due is not None:
        return None
    if isinstance(schedule.once, datetime):
        return schedule.once.astimezone(UTC)
    return _utc(history.since, "since")


def _utc(moment: datetime, name: str) -> datetime:
    # a naive time would silently mean the machine's zone, which a schedule never uses
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not {moment.isoformat()}")
    return moment.astimezone(UTC)
