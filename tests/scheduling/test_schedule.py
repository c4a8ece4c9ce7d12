"""Due times: every kind of schedule, over months, across daylight-saving changes, with each
catch-up policy; and schedules in words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.definitions.schedule import WEEKDAYS, Schedule
from audience.scheduling.describe import describe
from audience.scheduling.schedule import (
    CATCH_UP_LIMIT,
    ScheduleHistory,
    due_times,
    next_due,
    next_run,
)

TICK = timedelta(microseconds=1)
# zones with the awkward changes: an hour at 02:00 (New York), at 01:00 (London), half an hour
# (Lord Howe), at midnight (Santiago), 45 minutes off the hour (Chatham), southern summers
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Kolkata",
]


def schedule(**kinds: Any) -> Schedule:
    return Schedule.model_validate(kinds)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def due_between(plan: Schedule, since: datetime, until: datetime) -> list[datetime]:
    """Every due time from `since` (inclusive) to `until`, by stepping next_due."""
    history = ScheduleHistory(since=since)
    found: list[datetime] = []
    due = next_due(plan, after=since - TICK, history=history)
    while due is not None and due <= until:
        found.append(due)
        due = next_due(plan, after=due, history=history)
    return found


def on_local_day(plan: Schedule, zone: str, day: date) -> list[datetime]:
    tz = ZoneInfo(zone)
    start = datetime.combine(day - timedelta(days=2), time(), tz)
    return [
        due
        for due in due_between(plan, start, start + timedelta(days=5))
        if due.astimezone(tz).date() == day
    ]


# --- daylight saving, by example ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "at", "day", "expected"),
    [
        # spring forward: 02:30 does not exist; runs when the clocks change, 03:00 EDT
        ("America/New_York", "02:30", date(2027, 3, 14), utc(2027, 3, 14, 7)),
        # fall back: 01:30 happens twice; runs at the first, 01:30 EDT
        ("America/New_York", "01:30", date(2027, 11, 7), utc(2027, 11, 7, 5, 30)),
        ("Europe/London", "01:30", date(2027, 3, 28), utc(2027, 3, 28, 1)),  # 02:00 BST
        ("Europe/London", "01:30", date(2027, 10, 31), utc(2027, 10, 31, 0, 30)),  # 01:30 BST
        # a half-hour change: 02:00 → 02:30 +11:00, then 02:00 → 01:30 +10:30
        ("Australia/Lord_Howe", "02:15", date(2027, 10, 3), utc(2027, 10, 2, 15, 30)),
        ("Australia/Lord_Howe", "01:45", date(2027, 4, 4), utc(2027, 4, 3, 14, 45)),
        # midnight does not exist in Santiago on its spring-forward day: 01:00 -03:00
        ("America/Santiago", "00:30", date(2027, 9, 5), utc(2027, 9, 5, 4)),
    ],
)
def test_a_daily_run_happens_exactly_once_on_a_daylight_saving_day(
    zone: str, at: str, day: date, expected: datetime
) -> None:
    daily = schedule(recurring={"every": "day", "at": at, "timezone": zone})
    hour, minute = at.split(":")
    cron = schedule(recurring={"cron": f"{int(minute)} {int(hour)} * * *", "timezone": zone})
    assert on_local_day(daily, zone, day) == [expected]
    assert on_local_day(cron, zone, day) == [expected]


def test_several_cron_times_in_one_spring_gap_make_one_run() -> None:
    plan = schedule(recurring={"cron": "*/15 2 * * *", "timezone": "America/New_York"})
    assert on_local_day(plan, "America/New_York", date(2027, 3, 14)) == [utc(2027, 3, 14, 7)]
    assert len(on_local_day(plan, "America/New_York", date(2027, 3, 15))) == 4


def test_an_hourly_cron_runs_each_wall_clock_hour_once_when_the_clocks_fall_back() -> None:
    plan = schedule(recurring={"cron": "0 * * * *", "timezone": "America/New_York"})
    runs = due_between(plan, utc(2027, 11, 7, 3, 30), utc(2027, 11, 7, 8, 30))
    # 00:00 EDT, 01:00 EDT, (01:00 EST is the second 01:00: not run), 02:00 EST, 03:00 EST
    assert runs == [utc(2027, 11, 7, hour) for hour in (4, 5, 7, 8)]


def test_every_n_hours_is_elapsed_time_across_daylight_saving() -> None:
    plan = schedule(every={"value": 1, "unit": "hours", "timezone": "America/New_York"})
    tz = ZoneInfo("America/New_York")
    day_start = datetime(2027, 11, 7, tzinfo=tz)
    runs = due_between(plan, day_start, datetime(2027, 11, 8, tzinfo=tz) - TICK)
    assert len(runs) == 25  # the fall-back day is 25 hours long
    assert {b - a for a, b in pairwise(runs)} == {timedelta(hours=1)}


def test_every_n_days_keeps_the_local_time_of_day() -> None:
    tz = ZoneInfo("Europe/London")
    plan = schedule(every={"value": 2, "unit": "days", "timezone": "Europe/London"})
    runs = due_between(plan, datetime(2027, 3, 20, 9, tzinfo=tz), datetime(2027, 4, 5, tzinfo=tz))
    local = [r.astimezone(tz) for r in runs]
    assert [r.date().day for r in local] == [20, 22, 24, 26, 28, 30, 1, 3]
    assert {r.time() for r in local} == {time(9)}
    assert {r.utcoffset() for r in local} == {timedelta(0), timedelta(hours=1)}


# --- every kind over months (properties) --------------------------------------------------------


def first_reading_at_or_after(zone: ZoneInfo, day: date, at: time) -> datetime:
    """Oracle: the first minute of local `day` whose wall clock reads `at` or later (so the first
    of a repeated time, or the moment the clocks jump over a missing one)."""
    minute = datetime.combine(day, at, UTC) - timedelta(hours=15)
    while True:
        local = minute.astimezone(zone)
        if local.date() == day and local.time() >= at:
            return minute
        minute += timedelta(minutes=1)


def offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[date]:
    """The local days in [start, end) on which the zone's offset changes."""
    day = start
    while day < end:
        tomorrow = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != tomorrow.astimezone(zone).utcoffset():
            yield day.astimezone(zone).date()
            yield tomorrow.astimezone(zone).date()
        day = tomorrow


zones = st.sampled_from(ZONES)
times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
start_days = st.dates(date(2026, 1, 1), date(2029, 12, 31))


@settings(max_examples=40, deadline=None)
@given(zone=zones, at=times_of_day, first=start_days)
def test_daily_runs_once_every_local_day_at_its_time(zone: str, at: time, first: date) -> None:
    tz = ZoneInfo(zone)
    plan = schedule(recurring={"every": "day", "at": f"{at:%H:%M}", "timezone": zone})
    start = datetime.combine(first, time(), tz)
    end = start + timedelta(days=200)
    runs = due_between(plan, start, end)
    days = [r.astimezone(tz).date() for r in runs]
    assert days == [first + timedelta(days=n) for n in range(len(days))]
    assert len(days) >= 199
    for day in {first, *offset_changes(tz, start, end)} & set(days):
        assert runs[days.index(day)] == first_reading_at_or_after(tz, day, at)


@settings(max_examples=40, deadline=None)
@given(zone=zones, at=times_of_day, first=start_days, weekday=st.sampled_from(WEEKDAYS))
def test_weekly_runs_on_its_weekday(zone: str, at: time, first: date, weekday: str) -> None:
    tz = ZoneInfo(zone)
    plan = schedule(
        recurring={"every": "week", "on": weekday, "at": f"{at:%H:%M}", "timezone": zone}
    )
    start = datetime.combine(first, time(), tz)
    runs = due_between(plan, start, start + timedelta(days=200))
    days = [r.astimezone(tz).date() for r in runs]
    assert {d.weekday() for d in days} == {WEEKDAYS.index(weekday)}
    assert days == [days[0] + timedelta(weeks=n) for n in range(len(days))]
    assert days[0] - first < timedelta(weeks=1)
    assert len(days) in (28, 29)


@settings(max_examples=40, deadline=None)
@given(zone=zones, at=times_of_day, first=start_days, on=st.integers(1, 31))
def test_monthly_runs_once_a_month_on_its_day_or_the_last(
    zone: str, at: time, first: date, on: int
) -> None:
    tz = ZoneInfo(zone)
    plan = schedule(recurring={"every": "month", "on": on, "at": f"{at:%H:%M}", "timezone": zone})
    start = datetime.combine(first.replace(day=1), time(), tz)
    a_year_later = datetime.combine(date(first.year + 1, first.month, 1), time(), tz)
    runs = due_between(plan, start, a_year_later - TICK)
    days = [r.astimezone(tz).date() for r in runs]
    months = [(d.year, d.month) for d in days]
    assert len(months) == len(set(months)) == 12
    for day in days:
        last = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        assert day.day == min(on, last.day)


def test_monthly_on_the_31st_runs_on_the_last_day_of_short_months() -> None:
    plan = schedule(recurring={"every": "month", "on": 31, "at": "06:00"})
    runs = due_between(plan, utc(2027, 1, 1), utc(2027, 5, 1))
    assert [r.date() for r in runs] == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
    ]


CRONS = [
    "0 6 * * 1",
    "30 2 * * *",
    "*/20 1-3 * * *",
    "15 0 1,15 * *",
    "0 */6 * * *",
    "0 0 L * *",
    "*/20 * * * *",
]


@settings(max_examples=30, deadline=None)
@given(expression=st.sampled_from(CRONS), first=start_days)
def test_a_cron_in_utc_is_croniters_sequence(expression: str, first: date) -> None:
    start = datetime.combine(first, time(), UTC)
    runs = due_between(schedule(recurring={"cron": expression}), start, start + timedelta(days=21))
    matches = croniter(expression, start.replace(tzinfo=None) - TICK)
    assert [r.replace(tzinfo=None) for r in runs] == [
        matches.get_next(datetime) for _ in range(len(runs))
    ]
    assert matches.get_next(datetime) > (start + timedelta(days=21)).replace(tzinfo=None)


def rules() -> st.SearchStrategy[dict[str, Any]]:
    calendar = st.one_of(
        st.builds(lambda at: {"every": "day", "at": f"{at:%H:%M}"}, times_of_day),
        st.builds(lambda at: {"every": "week", "on": "sunday", "at": f"{at:%H:%M}"}, times_of_day),
        st.builds(lambda cron: {"cron": cron}, st.sampled_from(CRONS)),
    )
    return st.one_of(
        st.builds(lambda rule, zone: {"recurring": rule | {"timezone": zone}}, calendar, zones),
        st.builds(
            lambda value, unit, zone: {"every": {"value": value, "unit": unit, "timezone": zone}},
            st.integers(1, 5),
            st.sampled_from(["hours", "days"]),
            zones,
        ),
    )


@cache
def clock_changes(zone_name: str) -> tuple[tuple[datetime, bool], ...]:
    """The UTC hours of 2027 in which the zone's clocks change, and whether they go back."""
    zone = ZoneInfo(zone_name)
    found = []
    for hour in range(365 * 24):
        moment = utc(2027, 1, 1) + timedelta(hours=hour)
        before = moment.astimezone(zone).utcoffset()
        after = (moment + timedelta(hours=1)).astimezone(zone).utcoffset()
        if before != after:
            found.append((moment, after < before))
    return tuple(found)


@st.composite
def near_a_clock_change(draw: st.DrawFn, zone_name: str) -> datetime:
    """A moment within a few hours of one of the zone's clock changes in 2027 (or any moment
    in 2027, for zones without changes)."""
    changes = [moment for moment, _ in clock_changes(zone_name)]
    around = draw(st.sampled_from(changes or [utc(2027, 6, 1)]))
    return around + timedelta(minutes=draw(st.integers(-300, 300)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rule=rules())
def test_catching_up_agrees_with_the_sequence_of_due_times(
    data: st.DataObject, rule: dict[str, Any]
) -> None:
    plan = schedule(**rule)
    repeating = plan.repeating
    assert repeating is not None
    now = data.draw(near_a_clock_change(repeating.timezone))
    since = now - timedelta(days=data.draw(st.integers(1, 10)), hours=data.draw(st.integers(0, 23)))
    missed = due_between(plan, since, now)
    history = ScheduleHistory(since=since)
    assert missed == sorted(set(missed))  # ascending, no repeats
    latest = schedule(**{k: v | {"catch_up": "latest"} for k, v in rule.items()})
    every = schedule(**{k: v | {"catch_up": "all"} for k, v in rule.items()})
    assert due_times(latest, history=history, now=now) == missed[-1:]
    assert due_times(every, history=history, now=now) == missed
    if missed:  # after a run for one of them, only the later ones remain
        ran = ScheduleHistory(since=since, runs=1, last_due=missed[0])
        assert due_times(every, history=ran, now=now) == missed[1:]


def test_the_latest_due_time_counts_the_first_pass_of_a_repeated_hour() -> None:
    plan = schedule(recurring={"cron": "*/20 * * * *", "timezone": "America/New_York"})
    now = utc(2027, 11, 7, 6, 10)  # 01:10 EST: the clocks read 01:10 for the second time
    history = ScheduleHistory(since=utc(2027, 11, 7))
    # 01:40 EDT ran an hour ago, though the clock now reads less than 01:40
    assert due_times(plan, history=history, now=now) == [utc(2027, 11, 7, 5, 40)]
    assert next_due(plan, after=now, history=history) == utc(2027, 11, 7, 7)  # 02:00 EST


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    zone=st.sampled_from([z for z in ZONES if clock_changes(z)]),
    rule=st.one_of(
        st.builds(lambda cron: {"cron": cron}, st.sampled_from(["*/15 * * * *", "*/20 * * * *"])),
        st.builds(lambda at: {"every": "day", "at": f"{at:%H:%M}"}, times_of_day),
    ),
)
def test_the_latest_due_time_is_right_while_the_clocks_repeat_an_hour(
    data: st.DataObject, zone: str, rule: dict[str, Any]
) -> None:
    fall_back = [moment for moment, back in clock_changes(zone) if back]
    now = data.draw(st.sampled_from(fall_back)) + timedelta(minutes=data.draw(st.integers(0, 150)))
    plan = schedule(recurring=rule | {"timezone": zone})
    since = now - timedelta(days=2)
    missed = due_between(plan, since, now)
    assert due_times(plan, history=ScheduleHistory(since=since), now=now) == missed[-1:]


# --- catch-up policies --------------------------------------------------------------------------


def daily(catch_up: str, **more: Any) -> Schedule:
    rule = {"every": "day", "at": "06:00", "timezone": "America/New_York", "catch_up": catch_up}
    return schedule(recurring=rule | more)


NY = ZoneInfo("America/New_York")
DAY0 = datetime(2027, 1, 4, 6, tzinfo=NY)


def after_three_days(now: datetime) -> ScheduleHistory:
    return ScheduleHistory(since=DAY0 - timedelta(days=30), runs=5, last_due=DAY0)


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("latest", [DAY0 + timedelta(days=3)]),
        ("all", [DAY0 + timedelta(days=n) for n in (1, 2, 3)]),
        ("skip", []),
    ],
)
def test_the_clock_jumps_three_days_on_a_daily_schedule(
    catch_up: str, expected: list[datetime]
) -> None:
    now = DAY0 + timedelta(days=3, hours=6)
    assert due_times(daily(catch_up), history=after_three_days(now), now=now) == expected


@pytest.mark.parametrize(
    ("late", "runs"),
    [
        (timedelta(0), True),
        (timedelta(minutes=20), True),
        (timedelta(hours=1), True),
        (timedelta(hours=1, seconds=1), False),
    ],
)
def test_skip_runs_a_due_time_only_within_the_grace_hour(late: timedelta, runs: bool) -> None:
    due = DAY0 + timedelta(days=3)
    got = due_times(daily("skip"), history=after_three_days(due), now=due + late)
    assert got == ([due] if runs else [])


def test_catching_up_all_comes_in_batches_oldest_first() -> None:
    plan = schedule(recurring={"cron": "* * * * *", "catch_up": "all"})
    since = utc(2027, 1, 1)
    now = since + timedelta(minutes=2500)
    history = ScheduleHistory(since=since)
    batches = []
    while batch := due_times(plan, history=history, now=now):
        batches.append(batch)
        history = ScheduleHistory(since=since, runs=history.runs + len(batch), last_due=batch[-1])
    assert [len(b) for b in batches] == [CATCH_UP_LIMIT, CATCH_UP_LIMIT, 501]
    flat = [due for batch in batches for due in batch]
    assert flat == [since + timedelta(minutes=n) for n in range(2501)]


def test_a_schedule_ending_after_n_runs_stops_there() -> None:
    plan = daily("all", end={"after": 10})
    now = DAY0 + timedelta(days=3, hours=6)
    eight = ScheduleHistory(since=DAY0 - timedelta(days=30), runs=8, last_due=DAY0)
    assert due_times(plan, history=eight, now=now) == [DAY0 + timedelta(days=n) for n in (1, 2)]
    done = ScheduleHistory(since=DAY0 - timedelta(days=30), runs=10, last_due=DAY0)
    assert due_times(plan, history=done, now=now) == []
    assert next_due(plan, after=now, history=done) is None
    assert next_run(plan, history=done, now=now) is None
    assert next_due(plan, after=now, history=eight) == DAY0 + timedelta(days=4)


def test_a_schedule_ending_on_a_date_runs_on_that_local_day_and_never_after() -> None:
    plan = daily("latest", end={"on": date(2027, 1, 10)})
    history = ScheduleHistory(since=DAY0)
    last = datetime(2027, 1, 10, 6, tzinfo=NY)
    assert due_between(plan, DAY0, DAY0 + timedelta(days=30))[-1] == last
    assert next_due(plan, after=last, history=history) is None
    later = last + timedelta(days=5)
    assert due_times(plan, history=history, now=later) == [last]
    ran = ScheduleHistory(since=DAY0, runs=7, last_due=last)
    assert due_times(plan, history=ran, now=later) == []


@pytest.mark.parametrize(
    ("start", "first"),
    [
        (date(2027, 2, 1), datetime(2027, 2, 1, 6, tzinfo=NY)),  # a date: from local midnight
        ("2027-02-01T06:00:01", datetime(2027, 2, 2, 6, tzinfo=NY)),  # local, no offset
        ("2027-02-01T10:59:00+00:00", datetime(2027, 2, 1, 6, tzinfo=NY)),  # 05:59 in New York
        ("2027-02-01T11:00:00+00:00", datetime(2027, 2, 1, 6, tzinfo=NY)),  # exactly then
    ],
)
def test_a_schedule_runs_from_its_start(start: Any, first: datetime) -> None:
    plan = daily("all", start=start)
    history = ScheduleHistory(since=DAY0)
    assert next_due(plan, after=DAY0, history=history) == first
    assert due_times(plan, history=history, now=first - TICK) == []
    assert due_times(plan, history=history, now=first) == [first]


def test_nothing_is_owed_from_before_the_schedule_took_effect() -> None:
    plan = daily("all", start=date(2026, 1, 1))
    applied = DAY0 + timedelta(hours=4)  # 10:00, after the day's run
    history = ScheduleHistory(since=applied)
    assert due_times(plan, history=history, now=applied + timedelta(hours=1)) == []
    assert next_run(plan, history=history, now=applied) == DAY0 + timedelta(days=1)


def test_every_counts_from_its_start_or_from_when_it_took_effect() -> None:
    applied = utc(2027, 1, 1, 10, 17)
    plain = schedule(every={"value": 6, "unit": "hours"})
    started = schedule(every={"value": 6, "unit": "hours", "start": "2027-01-01T00:00:00Z"})
    until = applied + timedelta(hours=14)
    assert due_between(plain, applied, until) == [applied + timedelta(hours=h) for h in (0, 6, 12)]
    assert due_between(started, applied, until) == [utc(2027, 1, 1, h) for h in (12, 18)] + [
        utc(2027, 1, 2, 0)
    ]
    # taking effect at once: the first run is due immediately
    history = ScheduleHistory(since=applied)
    assert due_times(plain, history=history, now=applied) == [applied]


def test_once_as_soon_as_possible_is_due_when_it_takes_effect_and_runs_once() -> None:
    plan = schedule(once="asap")
    applied = utc(2027, 1, 1, 10, 17)
    fresh = ScheduleHistory(since=applied)
    assert due_times(plan, history=fresh, now=applied + timedelta(days=2)) == [applied]
    assert next_run(plan, history=fresh, now=applied + timedelta(days=2)) == applied
    assert next_due(plan, after=applied - TICK, history=fresh) == applied
    ran = ScheduleHistory(since=applied, runs=1, last_due=applied)
    assert due_times(plan, history=ran, now=applied + timedelta(days=2)) == []
    assert next_due(plan, after=applied - TICK, history=ran) is None
    failed = ScheduleHistory(since=applied, runs=0, last_due=applied)  # retrying is the worker's
    assert due_times(plan, history=failed, now=applied + timedelta(days=2)) == []


def test_once_at_a_time_is_due_from_then_however_late() -> None:
    plan = schedule(once="2026-12-01T09:00:00-08:00")
    moment = utc(2026, 12, 1, 17)
    fresh = ScheduleHistory(since=utc(2026, 11, 1))
    assert due_times(plan, history=fresh, now=moment - TICK) == []
    assert next_run(plan, history=fresh, now=moment - TICK) == moment
    assert due_times(plan, history=fresh, now=moment + timedelta(days=40)) == [moment]
    ran = ScheduleHistory(since=utc(2026, 11, 1), runs=1, last_due=moment)
    assert next_due(plan, after=moment - TICK, history=ran) is None
    assert next_run(plan, history=ran, now=moment + timedelta(days=40)) is None


def test_times_without_a_zone_are_refused() -> None:
    plan = daily("latest")
    with pytest.raises(ValueError, match="timezone-aware"):
        due_times(plan, history=ScheduleHistory(since=DAY0), now=datetime(2027, 1, 5))
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        next_due(plan, after=DAY0, history=ScheduleHistory(since=datetime(2027, 1, 5)))


def test_results_are_in_utc() -> None:
    due = next_due(daily("latest"), after=DAY0, history=ScheduleHistory(since=DAY0))
    assert due is not None and due.tzinfo is UTC


# --- in words -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "history", "words"),
    [
        ({"once": "asap"}, None, "once, as soon as possible"),
        ({"once": "2026-12-01T09:00:00-08:00"}, None, "once at 2026-12-01 09:00 -08:00"),
        (
            {"recurring": {"cron": "0 6 * * 1", "timezone": "America/Los_Angeles"}},
            None,
            "every Monday at 06:00 America/Los_Angeles",
        ),
        ({"recurring": {"cron": "30 8 * * *"}}, None, "daily at 08:30 UTC"),
        ({"recurring": {"cron": "0 6 * * 0"}}, None, "every Sunday at 06:00 UTC"),
        ({"recurring": {"cron": "0 6 15 * *"}}, None, "monthly on day 15 at 06:00 UTC"),
        ({"recurring": {"cron": "*/15 * * * *"}}, None, 'on cron "*/15 * * * *" in UTC'),
        ({"recurring": {"cron": "0 6 1 * 1"}}, None, 'on cron "0 6 1 * 1" in UTC'),
        (
            {
                "recurring": {
                    "every": "day",
                    "at": "02:30",
                    "timezone": "Europe/London",
                    "end": {"after": 10},
                }
            },
            ScheduleHistory(since=utc(2027, 1, 1), runs=3),
            "daily at 02:30 Europe/London, 3 of 10 runs",
        ),
        (
            {"recurring": {"every": "day", "end": {"after": 1}}},
            None,
            "daily at 00:00 UTC, for 1 run",
        ),
        (
            {"recurring": {"every": "week", "on": "friday", "at": "06:00", "catch_up": "all"}},
            None,
            "every Friday at 06:00 UTC, catching up every missed run",
        ),
        (
            {
                "recurring": {
                    "every": "month",
                    "on": 31,
                    "start": "2027-01-01",
                    "end": "2027-12-31",
                    "catch_up": "skip",
                }
            },
            None,
            "monthly on day 31 (or the month's last day) at 00:00 UTC, from 2027-01-01, "
            "ending on 2027-12-31, skipping missed runs",
        ),
        ({"every": {"value": 1, "unit": "days"}}, None, "every 1 day"),
        ({"every": {"value": 6, "unit": "hours", "timezone": "Asia/Tokyo"}}, None, "every 6 hours"),
        (
            {"every": {"value": 2, "unit": "weeks", "timezone": "Asia/Tokyo"}},
            None,
            "every 2 weeks (Asia/Tokyo)",
        ),
        (
            {"every": {"value": 1, "unit": "days", "start": "2027-01-01T06:00:00+01:00"}},
            None,
            "every 1 day, from 2027-01-01 06:00 +01:00",
        ),
    ],
)
def test_a_schedule_in_words(
    kinds: dict[str, Any], history: ScheduleHistory | None, words: str
) -> None:
    assert describe(schedule(**kinds), history) == words


# --- the end of the calendar -----------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"recurring": {"cron": "59 23 31 12 *", "timezone": "Pacific/Kiritimati"}},
        {"recurring": {"every": "month", "on": 31, "at": "23:30", "timezone": "Etc/GMT+12"}},
        {"recurring": {"every": "day", "at": "23:30"}},
        {"every": {"value": 522, "unit": "weeks"}},
        {"every": {"value": 87_840, "unit": "hours"}},
    ],
)
def test_a_schedule_that_would_run_past_year_9999_has_no_next_run(rule: dict[str, Any]) -> None:
    plan = schedule(**rule)
    last_day = utc(9999, 12, 31, 23, 59)
    history = ScheduleHistory(since=utc(9999, 12, 30))
    assert next_due(plan, after=last_day, history=history) is None
    upcoming = next_run(plan, history=history, now=last_day)  # a run already due, or none
    assert upcoming is None or upcoming <= last_day
