"""What results look like as JSON: the types the shapes of `--json` and of the API share.

A result's shape is one pydantic model, printed by the CLI's `--json` and answered by the API
(which also describes it in OpenAPI), so the two cannot drift. Times keep Python's ISO 8601
form with a `T` and the offset (`2026-11-23T15:30:00+00:00`), as the CLI has always printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainSerializer, RootModel
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    import pyarrow as pa

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


def left_out_when_none() -> Any:
    """A field's default for a key that is absent from the JSON, not null, when there is
    nothing to say (OpenAPI then lists it as optional)."""
    return Field(default=None, exclude_if=_is_none)


def _is_none(value: object) -> bool:
    return value is None


JsonRow = dict[str, JsonValue]
"""One row of a query's result, by column name: which columns, and of what type, is up to the
query, so the values are any JSON."""


def json_value(value: object) -> JsonValue:
    """A value of a query's result as JSON: dates and times in ISO 8601 as above, decimals as
    text (exact to the last digit), lists and structs value by value."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    # UUIDs, intervals (ISO 8601 durations) and the like, as pydantic writes them
    found: JsonValue = to_jsonable_python(value, fallback=str)
    return found


class Rows(RootModel[list[JsonRow]]):
    """Rows of a query's result, each by column name (a preview's: its columns are the
    query's)."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def of(cls, table: pa.Table, value: Callable[[object], JsonValue] = json_value) -> Rows:
        """The rows of an Arrow table, each value made JSON by `value`."""
        return cls([{k: value(v) for k, v in row.items()} for row in table.to_pylist()])


class SegmentSql(Shape):
    """A segment's name and the SQL that selects its customers (`segment sql --json`)."""

    segment: str
    sql: str
