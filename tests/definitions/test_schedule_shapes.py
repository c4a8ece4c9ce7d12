"""Schedules as users write them: every documented YAML shape loads; every mistake is refused
with the field and file:line; `check_schedule` refuses what could never run from now on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from audience.definitions.campaign import Campaign
from audience.definitions.loader import dump_documents, load_text
from audience.definitions.schedule import End, Schedule, check_schedule
from audience.errors import DefinitionError, ScheduleError

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
NEW_YEAR_AT_PLUS_FIVE = datetime(2026, 12, 31, 19, tzinfo=UTC)  # 2027-01-01T00:00+05:00


def campaign_text(schedule: str) -> str:
    """A campaign whose `schedule:` key is on line 5, followed by `schedule` (indented YAML)."""
    return (
        "kind: campaign\n"
        "name: Weekly\n"
        "audience: {include: [Everyone]}\n"
        "treatments: [{name: Standard, percent: 100, destinations: [files]}]\n"
        f"schedule:\n{schedule}"
    )


def loaded(schedule: str) -> Campaign:
    [document] = load_text(campaign_text(schedule), "c.yaml")
    assert isinstance(document.definition, Campaign)
    return document.definition


@pytest.mark.parametrize(
    ("written", "expected", "recurring"),
    [
        ("  once: asap\n", {"once": "asap"}, False),
        (
            '  once: "2026-12-01T09:00:00-08:00"\n',
            {"once": datetime(2026, 12, 1, 17, tzinfo=UTC)},
            False,
        ),
        (  # unquoted, YAML reads a timestamp with its offset
            "  once: 2026-12-01T09:00:00-08:00\n",
            {"once": datetime(2026, 12, 1, 17, tzinfo=UTC)},
            False,
        ),
        (
            '  recurring: {cron: "0 6 * * 1", timezone: America/Los_Angeles}\n',
            {"recurring": {"cron": "0 6 * * 1", "timezone": "America/Los_Angeles"}},
            True,
        ),
        (
            '  recurring: {every: week, at: "06:00", timezone: Europe/London}\n',
            {"recurring": {"every": "week", "at": "06:00", "timezone": "Europe/London"}},
            True,
        ),
        (
            "  recurring:\n    every: week\n    on: Friday\n    end: {on: 2027-06-30}\n",
            {"recurring": {"every": "week", "on": "friday", "end": {"on": date(2027, 6, 30)}}},
            True,
        ),
        (
            '  recurring: {every: month, on: 31, at: "02:30", start: 2026-12-01,'
            " end: {after: 10}, catch_up: all}\n",
            {
                "recurring": {
                    "every": "month",
                    "on": 31,
                    "at": "02:30",
                    "start": date(2026, 12, 1),
                    "end": {"after": 10},
                    "catch_up": "all",
                }
            },
            True,
        ),
        (  # the short spellings of an end
            "  recurring: {every: day, end: 2027-06-30}\n",
            {"recurring": {"every": "day", "end": {"on": date(2027, 6, 30)}}},
            True,
        ),
        (
            "  recurring: {every: day, runs: 3}\n",
            {"recurring": {"every": "day", "end": {"after": 3}}},
            True,
        ),
        ("  every: {value: 1, unit: days}\n", {"every": {"value": 1, "unit": "days"}}, True),
        (  # a start with an offset keeps it, even at midnight
            '  every: {value: 1, unit: days, start: "2027-01-01T00:00:00+05:00"}\n',
            {"every": {"value": 1, "unit": "days", "start": NEW_YEAR_AT_PLUS_FIVE}},
            True,
        ),
        (
            '  every: {value: 2, unit: weeks, start: "2027-01-01"}\n',
            {"every": {"value": 2, "unit": "weeks", "start": date(2027, 1, 1)}},
            True,
        ),
        (
            '  every: {value: 6, unit: hours, start: "2027-01-01T00:00:00Z", catch_up: skip}\n',
            {
                "every": {
                    "value": 6,
                    "unit": "hours",
                    "start": datetime(2027, 1, 1, tzinfo=UTC),
                    "catch_up": "skip",
                }
            },
            True,
        ),
    ],
)
def test_documented_shapes_load_and_round_trip(
    written: str, expected: dict[str, Any], recurring: bool
) -> None:
    campaign = loaded(written)
    assert campaign.schedule == Schedule.model_validate(expected)
    assert campaign.is_recurring is recurring
    [again] = load_text(dump_documents([campaign]))
    assert again.definition == campaign


def test_every_options_have_their_defaults() -> None:
    weekly = loaded("  recurring: {every: week}\n").schedule.recurring
    monthly = loaded("  recurring: {every: month}\n").schedule.recurring
    assert weekly is not None and monthly is not None
    assert (weekly.weekday, weekly.time_of_day, weekly.timezone) == (0, (0, 0), "UTC")
    assert monthly.day_of_month == 1
    assert weekly.catch_up == "latest"


def test_a_campaign_without_a_schedule_runs_once_as_soon_as_possible() -> None:
    [document] = load_text(campaign_text("").removesuffix("schedule:\n"))
    definition = document.definition
    assert isinstance(definition, Campaign)
    assert definition.schedule == Schedule(once="asap")
    assert not definition.is_recurring


@pytest.mark.parametrize(
    ("written", "field", "line", "fragment"),
    [
        (
            '  recurring:\n    timezone: UTC\n    cron: "every tuesday-ish"\n',
            "schedule.recurring.cron",
            8,
            "not a cron expression",
        ),
        (  # croniter would read a sixth field as seconds
            '  recurring:\n    cron: "0 0 6 * * 1"\n',
            "schedule.recurring.cron",
            7,
            "five fields",
        ),
        ('  recurring:\n    cron: "0 0 30 2 *"\n', "schedule.recurring.cron", 7, "never matches"),
        (
            '  recurring:\n    cron: "0 6 * * 1"\n    timezone: Mars/Olympus\n',
            "schedule.recurring.timezone",
            8,
            "unknown",
        ),
        (  # the machine's own zone is not a zone
            "  recurring:\n    every: day\n    timezone: localtime\n",
            "schedule.recurring.timezone",
            8,
            "unknown",
        ),
        (
            '  recurring:\n    every: day\n    at: "24:00"\n',
            "schedule.recurring.at",
            8,
            "time of day",
        ),
        (
            '  recurring:\n    cron: "0 6 * * 1"\n    at: "06:00"\n',
            "schedule.recurring.at",
            8,
            "cron expression gives its own",
        ),
        (
            "  recurring:\n    every: day\n    on: monday\n",
            "schedule.recurring.on",
            8,
            "on is for week or month",
        ),
        ("  recurring:\n    every: week\n    on: funday\n", "schedule.recurring.on", 8, "weekday"),
        ("  recurring:\n    every: month\n    on: 32\n", "schedule.recurring.on", 8, "1 to 31"),
        ("  recurring:\n    every: month\n    on: 0\n", "schedule.recurring.on", 8, "1 to 31"),
        (
            "  recurring:\n    every: day\n    start: 2027-02-01\n    end: {on: 2027-01-31}\n",
            "schedule.recurring.end.on",
            9,
            "before it starts on 2027-02-01",
        ),
        (  # a start with an offset is compared on its local date: 2027-02-01 in Los Angeles
            "  recurring:\n    every: day\n    timezone: America/Los_Angeles\n"
            '    start: "2027-02-02T01:00:00+00:00"\n    end: {on: 2027-01-31}\n',
            "schedule.recurring.end.on",
            10,
            "before it starts on 2027-02-01",
        ),
        (
            "  recurring:\n    every: day\n    end:\n      after: 0\n",
            "schedule.recurring.end.after",
            9,
            "1 or more",
        ),
        (
            "  recurring:\n    every: day\n    end: {on: 2027-01-31, after: 3}\n",
            "schedule.recurring.end",
            8,
            "one of them",
        ),
        (  # in UTC, the year before year 1
            "  recurring:\n    every: day\n    timezone: Pacific/Kiritimati\n"
            "    start: 0001-01-01\n",
            "schedule.recurring.start",
            9,
            "from 1900-01-01 to 8999-12-31",
        ),
        (
            "  every:\n    value: 1\n    unit: days\n    end: {on: 9999-12-31}\n",
            "schedule.every.end.on",
            9,
            "out of range",
        ),
        ("  every:\n    value: 0\n    unit: days\n", "schedule.every.value", 7, "1 or more"),
        ("  every:\n    value: 1\n    unit: months\n", "schedule.every.unit", 8, "'hours'"),
        (
            "  recurring:\n    every: day\n    catch_up: sometimes\n",
            "schedule.recurring.catch_up",
            8,
            "'latest', 'all' or 'skip'",
        ),
        ('  once: "2026-12-01T09:00:00"\n', "schedule.once", 6, "needs a UTC offset"),
        (
            "  once: asap\n  recurring: {every: day}\n",
            "schedule",
            5,
            "either once or recurring",
        ),
        ("  {}\n", "schedule", 5, "either once or recurring"),
    ],
)
def test_bad_schedules_name_the_field_and_line(
    written: str, field: str, line: int, fragment: str
) -> None:
    with pytest.raises(DefinitionError, match=fragment) as raised:
        loaded(written)
    assert raised.value.field == field
    assert raised.value.where == f"c.yaml:{line}"


def test_schedule_mistakes_are_schedule_errors() -> None:
    with pytest.raises(ScheduleError):
        loaded("  recurring: {every: day, timezone: Nowhere/Atall}\n")
    assert issubclass(ScheduleError, DefinitionError)
    assert issubclass(ScheduleError, ValueError)


def test_an_end_gives_on_or_after() -> None:
    assert End(after=1).after == 1
    with pytest.raises(ValueError, match="one of them"):
        End()


@pytest.mark.parametrize(
    "schedule",
    [
        {"once": "asap"},
        {"once": NOW},  # not in the past: now itself
        {"once": datetime(2027, 1, 1, 9, tzinfo=UTC)},
        {"recurring": {"every": "day", "end": {"on": NOW.date()}}},
        {"recurring": {"cron": "0 6 * * 1", "start": date(2020, 1, 1)}},
        {"every": {"value": 1, "unit": "days", "end": {"after": 3}}},
    ],
)
def test_check_schedule_accepts_what_can_still_run(schedule: dict[str, Any]) -> None:
    check_schedule(Schedule.model_validate(schedule), NOW)


@pytest.mark.parametrize(
    ("schedule", "now", "field", "fragment"),
    [
        (
            {"once": "2026-11-23T07:29:00-08:00"},
            NOW,
            "schedule.once",
            "in the past",
        ),
        (
            {"recurring": {"every": "day", "end": {"on": date(2026, 11, 22)}}},
            NOW,
            "schedule.recurring.end.on",
            "would never run",
        ),
        (
            {"every": {"value": 2, "unit": "hours", "end": {"on": date(2026, 1, 1)}}},
            NOW,
            "schedule.every.end.on",
            "ended on 2026-01-01",
        ),
        (  # 03:00 UTC on the 23rd is still the 22nd in Los Angeles, but not in UTC
            {"recurring": {"every": "day", "end": {"on": date(2026, 11, 22)}}},
            datetime(2026, 11, 23, 3, tzinfo=UTC),
            "schedule.recurring.end.on",
            r"today \(2026-11-23 in UTC\)",
        ),
    ],
)
def test_check_schedule_refuses_what_could_never_run(
    schedule: dict[str, Any], now: datetime, field: str, fragment: str
) -> None:
    with pytest.raises(ScheduleError, match=fragment) as raised:
        check_schedule(Schedule.model_validate(schedule), now)
    assert raised.value.field == field


def test_an_end_date_is_today_in_the_schedules_own_zone() -> None:
    schedule = Schedule.model_validate(
        {"recurring": {"every": "day", "timezone": "America/Los_Angeles", "end": "2026-11-22"}}
    )
    check_schedule(schedule, datetime(2026, 11, 23, 3, tzinfo=UTC))
    with pytest.raises(ScheduleError):
        check_schedule(schedule, datetime(2026, 11, 23, 9, tzinfo=UTC))


def test_an_interval_beyond_the_calendar_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than ten years"):
        Schedule.model_validate({"every": {"value": 100_000_000, "unit": "weeks"}})
