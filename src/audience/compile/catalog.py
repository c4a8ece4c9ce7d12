"""What the compiler knows of the engine: tables, their columns and each column's kind of type.

The engine produces a `Catalog`; the compiler only reads it, so it can be tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from audience.errors import UnknownAttribute, UnknownReference

ColumnKind = Literal["number", "string", "boolean", "date", "timestamp", "other"]

_KIND_BY_TYPE_WORD: tuple[tuple[str, ColumnKind], ...] = (
    ("timestamp", "timestamp"),
    ("datetime", "timestamp"),
    ("date", "date"),
    ("bool", "boolean"),
    ("char", "string"),
    ("text", "string"),
    ("string", "string"),
    ("uuid", "string"),
    ("int", "number"),
    ("numeric", "number"),
    ("decimal", "number"),
    ("double", "number"),
    ("float", "number"),
    ("real", "number"),
)


def column_kind(database_type: str) -> ColumnKind:
    """Map an engine's type name (`DECIMAL(14,2)`, `character varying`, …) to a kind."""
    lowered = database_type.lower()
    for word, kind in _KIND_BY_TYPE_WORD:
        if word in lowered:
            return kind
    return "other"


@dataclass(frozen=True)
class Catalog:
    """Tables → columns (in table order) → kinds."""

    tables: Mapping[str, Mapping[str, ColumnKind]] = field(default_factory=dict)

    def columns(self, table: str, *, field_path: str | None = None) -> Mapping[str, ColumnKind]:
        """The columns of `table`, or UnknownReference naming it."""
        found = self.tables.get(table)
        if found is None:
            raise UnknownReference(
                f"table {table!r} does not exist in the engine: name the right table in "
                "audience.toml's [tables] (on Spark, or give its Parquet path in [engine] tables)",
                field=field_path,
            )
        return found

    def kind(self, table: str, column: str, *, field_path: str | None = None) -> ColumnKind:
        """The kind of `table.column`, or UnknownAttribute naming both."""
        columns = self.columns(table, field_path=field_path)
        found = columns.get(column)
        if found is None:
            raise UnknownAttribute(
                f"unknown attribute {column!r}: {table} has no such column", field=field_path
            )
        return found
