"""Calendar arithmetic for relative date conditions, in UTC, at day boundaries."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

from audience.definitions.conditions import Unit
from audience.errors import InvalidValue


def utc_today(now: datetime) -> date:
    """Today's date in UTC for an aware `now` (a naive one is taken to be UTC already)."""
    return now.astimezone(UTC).date() if now.tzinfo is not None else now.date()


def days_before(day: date, amount: int, unit: Unit, *, field: str | None = None) -> date:
    """The date `amount` units before `day`; months and years clamp to the month's last day.

    InvalidValue naming `field` when that would be before the first day a date can hold."""
    try:
        if unit == "days":
            return day - timedelta(days=amount)
        if unit == "weeks":
            return day - timedelta(weeks=amount)
        months = amount * (12 if unit == "years" else 1)
        year, month = divmod(day.year * 12 + (day.month - 1) - months, 12)
        month += 1
        return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    except (OverflowError, ValueError):
        raise InvalidValue(
            f"{amount} {unit} before {day} is out of range: dates start in the year 1",
            field=field,
        ) from None


def day_after(day: date, *, field: str | None = None) -> date:
    """The next day (conditions end at the start of it); InvalidValue naming `field` for the
    last day a date can hold, which has none."""
    if day == date.max:
        raise InvalidValue(f"dates end at {date.max}; use a date before it", field=field)
    return day + timedelta(days=1)
