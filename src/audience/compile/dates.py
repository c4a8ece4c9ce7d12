"""Calendar arithmetic for relative date conditions, in UTC, at day boundaries."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

from audience.definitions.conditions import Unit


def utc_today(now: datetime) -> date:
    """Today's date in UTC for an aware `now` (a naive one is taken to be UTC already)."""
    return now.astimezone(UTC).date() if now.tzinfo is not None else now.date()


def days_before(day: date, amount: int, unit: Unit) -> date:
    """The date `amount` units before `day`; months and years clamp to the month's last day."""
    if unit == "days":
        return day - timedelta(days=amount)
    if unit == "weeks":
        return day - timedelta(weeks=amount)
    months = amount * (12 if unit == "years" else 1)
    year, month = divmod(day.year * 12 + (day.month - 1) - months, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
