"""What results look like as JSON: the types the shapes of `--json` and of the API share.

A result's shape is one pydantic model, printed by the CLI's `--json` and answered by the API
(which also describes it in OpenAPI), so the two cannot drift. Times keep Python's ISO 8601
form with a `T` and the offset (`2026-11-23T15:30:00+00:00`), as the CLI has always printed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer

Moment = Annotated[datetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str)]
Day = Annotated[date, PlainSerializer(lambda day: day.isoformat(), return_type=str)]

T = TypeVar("T")


class Shape(BaseModel):
    """Base of every result shape."""

    model_config = ConfigDict(frozen=True)


class Page(Shape, Generic[T]):
    """One page of a list: the items, how many there are in all, and where the page is."""

    items: list[T]
    total: int
    limit: int
    offset: int
