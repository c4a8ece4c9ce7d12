"""A schedule in words, for `audience status` and the Activations page."""

from __future__ import annotations

import re
from datetime import date, datetime

from audience.definitions.schedule import WEEKDAYS, Interval, Recurring, Schedule
from audience.scheduling.schedule import ScheduleHistory

_CATCH_UP = {"all": "catching up every missed run", "skip": "skipping missed runs"}
# cron expressions simple enough to say in words: fixed minute and hour, and at most one of a
# day of the month or a weekday
_SIMPLE_CRON = re.compile(r"(\d{1,2}) (\d{1,2}) (\*|\d{1,2}) \* (\*|[0-7])")


def describe(schedule: Schedule | None, history: ScheduleHistory | None = None) -> str:
    """The schedule in words: "once, as soon as possible", "once at 2026-12-01 09:00 -08:00",
    "every Monday at 06:00 America/Los_Angeles", "daily at 02:30 Europe/London, 3 of 10 runs",
    "every 1 day". With `history`, a schedule that ends after N runs says how many are done.
    No schedule (an activation run by hand) is "by hand"."""
    if schedule is None:
        return "by hand"
    if schedule.after is not None:
        return f"after each successful run of {schedule.after.kind} {schedule.after.name!r}"
    if schedule.once == "asap":
        return "once, as soon as possible"
    if isinstance(schedule.once, datetime):
        return f"once at {_moment(schedule.once)}"
    rule = schedule.repeating
    assert rule is not None  # a schedule is once or repeating
    parts = [_interval(rule) if isinstance(rule, Interval) else _calendar(rule)]
    if rule.start is not None:
        parts.append(f"from {_moment(rule.start)}")
    if rule.end is not None and rule.end.on is not None:
        parts.append(f"ending on {rule.end.on.isoformat()}")
    if rule.end is not None and rule.end.after is not None:
        runs = _count(rule.end.after, "run")
        parts.append(f"{history.runs} of {runs}" if history is not None else f"for {runs}")
    if rule.catch_up in _CATCH_UP:
        parts.append(_CATCH_UP[rule.catch_up])
    return ", ".join(parts)


def _interval(rule: Interval) -> str:
    words = f"every {_count(rule.value, rule.unit.removesuffix('s'))}"
    # days and weeks keep a local time of day, so their zone matters; hours do not
    return words if rule.unit == "hours" or rule.timezone == "UTC" else f"{words} ({rule.timezone})"


def _calendar(rule: Recurring) -> str:
    if rule.cron is not None:
        simple = _SIMPLE_CRON.fullmatch(" ".join(rule.cron.split()))
        if simple is not None:
            minute, hour, day, weekday = simple.groups()
            at = f"{int(hour):02d}:{int(minute):02d}"
            if day == "*" and weekday == "*":
                return f"daily at {at} {rule.timezone}"
            if weekday == "*":
                return f"monthly on day {int(day)} at {at} {rule.timezone}"
            if day == "*":  # cron's weekdays count from Sunday, 0 or 7
                return f"every {WEEKDAYS[(int(weekday) - 1) % 7].title()} at {at} {rule.timezone}"
        return f'on cron "{rule.cron}" in {rule.timezone}'  # (a day and a weekday mean either)
    at = rule.at or "00:00"
    if rule.every == "week":
        return f"every {WEEKDAYS[rule.weekday].title()} at {at} {rule.timezone}"
    if rule.every == "month":
        last = " (or the month's last day)" if rule.day_of_month > 28 else ""
        return f"monthly on day {rule.day_of_month}{last} at {at} {rule.timezone}"
    return f"daily at {at} {rule.timezone}"


def _moment(moment: date) -> str:
    if not isinstance(moment, datetime):
        return moment.isoformat()
    written = f"{moment:%Y-%m-%d %H:%M}"
    offset = moment.utcoffset()
    if offset is None:
        return written
    sign, offset = ("-", -offset) if offset.days < 0 else ("+", offset)
    hours, seconds = divmod(int(offset.total_seconds()), 3600)
    return f"{written} {sign}{hours:02d}:{seconds // 60:02d}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
