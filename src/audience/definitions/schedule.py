"""When an activation runs (SPEC §3, §5, §7): the `schedule:` of campaigns, journeys and
orchestrations.

```yaml
schedule: {once: asap}                                  # as soon as it is applied
schedule: {once: "2026-12-01T09:00:00-08:00"}           # at a moment (with its UTC offset)
schedule:                                               # by the calendar, in a time zone
  recurring:
    cron: "0 6 * * 1"                  # five fields; or every: day | week | month
    timezone: America/Los_Angeles      # IANA name; default UTC
    start: 2026-12-01                  # optional: a date (local midnight) or a date-time
    end: {on: 2027-06-30}              # optional: last local day with a run; or {after: 10} runs
    catch_up: latest                   # latest (default) | all | skip — see scheduling/schedule.py
schedule: {recurring: {every: week, on: friday, at: "06:00", timezone: Europe/London}}
schedule: {recurring: {every: month, on: 31, at: "02:30"}}     # the 31st, or the month's last day
schedule: {every: {value: 6, unit: hours}}              # every N hours | days | weeks (journeys)
schedule: {after: {campaign: Spring Churn Prevention}}  # after each of its successful runs
```

Only the shape is checked here; what the schedule means in time is `audience.scheduling`, and
what depends on "now" (a one-time run already in the past) is `check_schedule`, called when a
definition is applied.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter
from pydantic import field_validator, model_validator

from audience.definitions.base import DefinitionModel
from audience.definitions.names import Reference
from audience.errors import ScheduleError

CatchUp = Literal["latest", "all", "skip"]
"""What a worker does with due times it missed (while stopped): see `scheduling.schedule`."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""Weekday names `on` takes for `every: week`, in `date.weekday()` order."""
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(8999, 12, 31)
"""The dates a schedule may name (`once`, `start`, `end.on`): a thousand years from the end of
the calendar Python can count in (year 9999), so working a schedule's due times out from them
(a time zone's offset, ten years' interval, a cron that matches once in years) stays inside it."""


class End(DefinitionModel):
    """When a repeating schedule stops: `on` a date (the last local day that may have a run) or
    `after` a number of successful runs. `end: 2027-06-30` is short for `end: {on: 2027-06-30}`."""

    on: date | None = None
    after: int | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> End:
        if (self.on is None) == (self.after is None):
            raise ScheduleError("give end as {on: DATE} or {after: RUNS}, one of them")
        if self.on is not None:
            check_date(self.on, "on")
        if self.after is not None and self.after < 1:
            raise ScheduleError(
                f"a schedule ending after {self.after} runs never runs; give 1 or more",
                field="after",
            )
        return self


class _Repeating(DefinitionModel):
    """What every repeating schedule has: a time zone, an optional start and end, and a
    catch-up policy."""

    timezone: str = "UTC"
    start: datetime | date | None = None
    end: End | None = None
    catch_up: CatchUp = "latest"

    @field_validator("start", mode="before")
    @classmethod
    def _date_or_moment(cls, raw: Any) -> Any:
        # pydantic reads "2027-01-01T00:00:00+05:00" as a date if it may, dropping the offset;
        # so only a plain date is a date
        if isinstance(raw, str) and _DATE.fullmatch(raw.strip()):
            return date.fromisoformat(raw.strip())
        return raw

    @field_validator("end", mode="before")
    @classmethod
    def _end_shorthand(cls, raw: Any) -> Any:
        return {"on": raw} if isinstance(raw, date | str) else raw

    @model_validator(mode="after")
    def _zone_and_span(self) -> _Repeating:
        if not is_time_zone(self.timezone):
            raise ScheduleError(
                f"timezone {self.timezone!r} is unknown; give an IANA name such as "
                "America/Los_Angeles, Europe/London or UTC",
                field="timezone",
            )
        if self.start is not None:
            check_date(self.start, "start")
        first_day, last_day = self.first_day, self.end.on if self.end is not None else None
        if first_day is not None and last_day is not None and last_day < first_day:
            raise ScheduleError(
                f"the schedule ends on {last_day}, before it starts on {first_day}",
                field="end.on",
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone the schedule's dates and times of day are in."""
        return ZoneInfo(self.timezone)

    @property
    def first_day(self) -> date | None:
        """The local date of `start` (a date-time without an offset is in the schedule's zone)."""
        start = self.start
        if isinstance(start, datetime):
            aware = start.tzinfo is not None and start.utcoffset() is not None
            return (start.astimezone(self.zone) if aware else start).date()
        return start


class Recurring(_Repeating):
    """A calendar schedule in a time zone: a five-field `cron` expression, or `every` day, week
    (`on` a weekday, default monday) or month (`on` a day 1-31, default 1; in months shorter than
    `on`, the last day) `at` a time of day (default 00:00). `runs: N` is accepted for
    `end: {after: N}`."""

    cron: str | None = None
    every: Literal["day", "week", "month"] | None = None
    at: str | None = None
    on: str | int | None = None

    @model_validator(mode="before")
    @classmethod
    def _runs_shorthand(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "runs" in raw:
            if "end" in raw:
                raise ScheduleError("give either end or runs, not both", field="runs")
            raw = {k: v for k, v in raw.items() if k != "runs"} | {"end": {"after": raw["runs"]}}
        return raw

    @field_validator("on", mode="before")
    @classmethod
    def _weekday_lowercase(cls, raw: Any) -> Any:
        return raw.lower() if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _one_rule(self) -> Recurring:
        if (self.cron is None) == (self.every is None):
            raise ScheduleError("a recurring schedule needs either cron or every")
        if self.cron is not None:
            check_cron(self.cron)
            if self.at is not None or self.on is not None:
                raise ScheduleError(
                    "at and on go with every; a cron expression gives its own days and time",
                    field="at" if self.at is not None else "on",
                )
        if self.at is not None and not _TIME_OF_DAY.fullmatch(self.at):
            raise ScheduleError(f"at {self.at!r} is not a time of day like 06:30", field="at")
        self._check_on()
        return self

    def _check_on(self) -> None:
        if self.on is None:
            return
        if self.every == "day":
            raise ScheduleError("every: day runs every day; on is for week or month", field="on")
        if self.every == "week" and self.on not in WEEKDAYS:
            raise ScheduleError(
                f"on {self.on!r} is not a weekday; give one of {', '.join(WEEKDAYS)}", field="on"
            )
        if self.every == "month" and not (
            isinstance(self.on, int) and not isinstance(self.on, bool) and 1 <= self.on <= 31
        ):
            raise ScheduleError(f"on {self.on!r} is not a day of the month, 1 to 31", field="on")

    @property
    def time_of_day(self) -> tuple[int, int]:
        """(hour, minute) of an `every` schedule."""
        hour, minute = (self.at or "00:00").split(":")
        return int(hour), int(minute)

    @property
    def weekday(self) -> int:
        """The weekday (0 = Monday) of an `every: week` schedule."""
        return WEEKDAYS.index(self.on) if isinstance(self.on, str) else 0

    @property
    def day_of_month(self) -> int:
        """The day (1-31) of an `every: month` schedule."""
        return self.on if isinstance(self.on, int) else 1


_HOURS = {"hours": 1, "days": 24, "weeks": 24 * 7}
MAX_INTERVAL_HOURS = 10 * 366 * 24
"""The longest interval: past it, due times leave the calendar within a few runs."""


class Interval(_Repeating):
    """Every `value` hours, days or weeks, counted from `start` (or from when the schedule took
    effect). Hours are elapsed time; days and weeks keep the local time of day in `timezone`."""

    value: int
    unit: Literal["hours", "days", "weeks"]

    @model_validator(mode="after")
    def _positive(self) -> Interval:
        if self.value < 1:
            raise ScheduleError(
                f"every {self.value} {self.unit} never comes round; give 1 or more", field="value"
            )
        if self.value * _HOURS[self.unit] > MAX_INTERVAL_HOURS:
            raise ScheduleError(
                f"every {self.value} {self.unit} is more than ten years; give at most "
                f"{MAX_INTERVAL_HOURS // _HOURS[self.unit]:,} {self.unit}",
                field="value",
            )
        return self


class Upstream(DefinitionModel):
    """Another activation whose successful runs start this one's: `after: {campaign: NAME}`
    or `after: {orchestration: NAME}`."""

    campaign: Reference | None = None
    orchestration: Reference | None = None

    @model_validator(mode="after")
    def _one(self) -> Upstream:
        if (self.campaign is None) == (self.orchestration is None):
            raise ScheduleError(
                "after names one activation: {campaign: NAME} or {orchestration: NAME}",
                field="after",
            )
        return self

    @property
    def kind(self) -> str:
        """The upstream activation's kind."""
        return "campaign" if self.campaign is not None else "orchestration"

    @property
    def name(self) -> str:
        """The upstream activation's name."""
        return self.campaign or self.orchestration or ""


class Schedule(DefinitionModel):
    """Exactly one of: `once` (asap, or a moment with its UTC offset), `recurring` (calendar),
    `every` (an interval) or `after` (each successful run of another activation)."""

    once: Literal["asap"] | datetime | None = None
    recurring: Recurring | None = None
    every: Interval | None = None
    after: Upstream | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        kinds = ("once", "recurring", "every", "after")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ScheduleError(
                "a schedule is either once or recurring (or, for journeys, every N hours, days "
                "or weeks; for orchestrations, after another activation); give exactly one"
                f"{', not ' + ' and '.join(given) if given else ''}"
            )
        once = self.once
        if isinstance(once, datetime) and (once.tzinfo is None or once.utcoffset() is None):
            raise ScheduleError(
                f"once {once.isoformat()} needs a UTC offset, e.g. 2026-12-01T09:00:00-08:00",
                field="once",
            )
        if isinstance(once, datetime):
            check_date(once, "once")
        return self

    @property
    def repeating(self) -> Recurring | Interval | None:
        """The repeating rule, or None for a one-time schedule."""
        return self.recurring or self.every


def is_time_zone(name: str) -> bool:
    """True for an IANA time zone name; never the machine's own (`localtime`)."""
    return name in _time_zones()


@cache
def _time_zones() -> frozenset[str]:
    # "localtime" is a link to whatever zone the machine is set to, so it would make a schedule
    # mean different times on different machines
    return frozenset(available_timezones()) - {"localtime"}


def check_date(moment: date, field: str) -> None:
    """Raise ScheduleError (naming `field`) for a date or date-time outside EARLIEST_DATE to
    LATEST_DATE (a date-time's own calendar date, in the offset it was written with)."""
    day = moment.date() if isinstance(moment, datetime) else moment
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ScheduleError(
            f"{field} {moment.isoformat()} is out of range: a schedule's dates are from "
            f"{EARLIEST_DATE} to {LATEST_DATE}",
            field=field,
        )


def check_cron(expression: str) -> None:
    """Raise ScheduleError unless `expression` is a five-field cron expression (or an alias such
    as @daily) that matches some date."""
    fields = expression.split()
    shaped = len(fields) == 5 or (len(fields) == 1 and expression.startswith("@"))
    if not shaped or not croniter.is_valid(expression):
        raise ScheduleError(
            f"cron {expression!r} is not a cron expression of five fields "
            "(minute hour day-of-month month weekday), e.g. '0 6 * * 1'",
            field="cron",
        )
    try:
        # a fixed start keeps this pure; croniter looks decades ahead before giving up
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ScheduleError(f"cron {expression!r} never matches a date", field="cron") from None


def check_schedule(schedule: Schedule, now: datetime) -> None:
    """Raise ScheduleError (field `schedule.…`) for a schedule that could never run from `now`
    on: a one-time run in the past, or a repeating schedule whose end date has passed. Called
    when a definition is applied, with the workspace's clock; the model alone has no clock."""
    if isinstance(schedule.once, datetime) and schedule.once < now:
        raise ScheduleError(
            f"once {schedule.once.isoformat()} is in the past (it is now "
            f"{now.isoformat(timespec='minutes')}); give a later time or once: asap",
            field="schedule.once",
        )
    key = "recurring" if schedule.recurring is not None else "every"
    repeating = schedule.repeating
    if repeating is not None and repeating.end is not None and repeating.end.on is not None:
        today = now.astimezone(repeating.zone).date()
        if repeating.end.on < today:
            raise ScheduleError(
                f"the schedule ended on {repeating.end.on}, before today ({today} in "
                f"{repeating.timezone}), so it would never run",
                field=f"schedule.{key}.end.on",
            )
