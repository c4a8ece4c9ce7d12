"""The due times of each repeating rule, as UTC instants, forwards or backwards from a moment.

Calendar rules (cron, `every: day|week|month`, every N days or weeks) are worked out on the wall
clock of the schedule's time zone — never the machine's — and each wall-clock time then becomes an
instant, across daylight-saving changes as follows:

- a time the clocks spring forward over (02:30 in New York on 2027-03-14) runs at the first
  moment that exists after it: the instant the clocks change (03:00 EDT). Several times in one
  gap (a cron `*/15 2 * * *`) make one run there.
- a time the clocks fall back over, which happens twice (01:30 in New York on 2027-11-07), runs
  at its first occurrence only. So an hourly cron has a two-hour step that night, and a daily
  schedule runs exactly once every local day.

Every N hours is elapsed time (six hours are six hours, whatever the clocks do).

croniter is used on naive wall-clock times only, where it does plain calendar arithmetic; its
own time-zone handling is not relied on.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from croniter import croniter

from audience.definitions.schedule import Interval, Recurring

_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
T = TypeVar("T")


class Times(Protocol):
    """An endless (or, backwards, anchored) sequence of times, all naive or all aware."""

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The times strictly after `moment`, ascending, each once."""
        ...

    def until(self, moment: datetime) -> Iterator[datetime]:
        """The times at or before `moment`, descending, each once."""
        ...


def timeline(rule: Recurring | Interval, anchor: datetime) -> Times:
    """The UTC due times of a repeating rule. `anchor` is the instant an Interval counts from
    (its start, or when the schedule took effect); calendar rules ignore it."""
    zone = rule.zone
    if isinstance(rule, Interval):
        step = timedelta(**{rule.unit: rule.value})
        if rule.unit == "hours":
            return Steps(anchor, step)
        return WallClock(Steps(wall_time(anchor, zone), step), zone)
    if rule.every is not None:
        hour, minute = rule.time_of_day
        calendar = Calendar(rule.every, time(hour, minute), rule.weekday, rule.day_of_month)
        return WallClock(calendar, zone)
    assert rule.cron is not None  # the model has either every or cron
    return WallClock(Cron(rule.cron), zone)


def within_calendar(
    times: Callable[[T, datetime], Iterator[datetime]],
) -> Callable[[T, datetime], Iterator[datetime]]:
    """Make a sequence of times end where the calendar does (years 1 to 9999), rather than raise:
    a schedule whose next time would fall outside it has no next time."""

    @wraps(times)
    def bounded(self: T, moment: datetime) -> Iterator[datetime]:
        try:
            yield from times(self, moment)
        except (OverflowError, ValueError):
            # datetime arithmetic past year 9999 (or before year 1) raises OverflowError;
            # croniter and `date.replace` say ValueError ("year 10000 is out of range")
            return

    return bounded


def wall_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """What a clock in `zone` reads at the instant `moment` (naive)."""
    return moment.astimezone(zone).replace(tzinfo=None)


def instant_of(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall-clock time in `zone` runs at: its first occurrence when the clocks
    fall back over it, the moment the clocks change when they spring forward over it."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall_time(first, zone) == local:
        return first
    # In a gap, fold=0 reads `local` with the offset from before the change (an instant after
    # the change) and fold=1 with the offset after it (an instant before): the change is between.
    before = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _change_between(before, first, zone)


def _change_between(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (before, after] with the UTC offset `after` has (to the second, as
    zone changes are)."""
    new_offset = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class WallClock:
    """A rule of wall-clock times in a zone, as UTC instants."""

    rule: Times
    zone: ZoneInfo

    @within_calendar
    def after(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.after`."""
        # wall-clock times up to the clock's reading at `moment` can only run at or before it
        latest = moment
        for local in self.rule.after(wall_time(moment, self.zone)):
            instant = instant_of(local, self.zone)
            if instant > latest:
                yield instant
                latest = instant

    @within_calendar
    def until(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.until`."""
        # after the clocks fell back, wall-clock times up to the size of that step past the
        # clock's reading at `moment` ran (at their first occurrence) before `moment`
        offset_a_day_ago = (moment - _DAY).astimezone(self.zone).utcoffset()
        offset_now = moment.astimezone(self.zone).utcoffset()
        assert offset_a_day_ago is not None and offset_now is not None  # ZoneInfo always has one
        fell_back = max(timedelta(0), offset_a_day_ago - offset_now)
        earliest: datetime | None = None
        for local in self.rule.until(wall_time(moment, self.zone) + fell_back):
            instant = instant_of(local, self.zone)
            if instant <= moment and (earliest is None or instant < earliest):
                yield instant
                earliest = instant


@dataclass(frozen=True)
class Cron:
    """The wall-clock times a cron expression matches."""

    expression: str

    @within_calendar
    def after(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.after`."""
        matches = croniter(self.expression, moment)
        while True:
            yield matches.get_next(datetime)

    @within_calendar
    def until(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.until`."""
        matches = croniter(self.expression, moment + _TICK)  # get_prev is strictly before
        while True:
            yield matches.get_prev(datetime)


@dataclass(frozen=True)
class Calendar:
    """Every day, every week on a weekday, or every month on a day (the month's last day in
    months shorter than that), at a time of day."""

    every: Literal["day", "week", "month"]
    at: time
    weekday: int
    day_of_month: int

    @within_calendar
    def after(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.after`."""
        day = moment.date()
        while True:
            candidate = datetime.combine(day, self.at)
            if candidate > moment and self._runs_on(day):
                yield candidate
            day += _DAY

    @within_calendar
    def until(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.until`."""
        day = moment.date()
        while True:
            candidate = datetime.combine(day, self.at)
            if candidate <= moment and self._runs_on(day):
                yield candidate
            day -= _DAY

    def _runs_on(self, day: date) -> bool:
        if self.every == "week":
            return day.weekday() == self.weekday
        if self.every == "month":
            return day.day == min(self.day_of_month, monthrange(day.year, day.month)[1])
        return True


@dataclass(frozen=True)
class Steps:
    """anchor, anchor + step, anchor + 2·step, …: nothing before the anchor."""

    anchor: datetime
    step: timedelta

    @within_calendar
    def after(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.after`."""
        count = max(0, (moment - self.anchor) // self.step + 1)
        while True:
            yield self.anchor + count * self.step
            count += 1

    @within_calendar
    def until(self, moment: datetime) -> Iterator[datetime]:
        """See `Times.until`."""
        count = (moment - self.anchor) // self.step
        while count >= 0:
            yield self.anchor + count * self.step
            count -= 1
