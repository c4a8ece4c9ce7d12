"""Which engine tables the demo made, so it replaces only its own.

The record is a small table beside them in the engine (`audience_demo`: one row per table, with
the seed, the number of profiles, when it was made and how many rows it had). A table of a
recorded name whose row count differs is not taken for the demo's: it may be one a user made
after dropping the demo's, and refusing is the safe side (`--replace` says otherwise). The
record lives with the tables it describes: a database copied, restored or shared by several
workspaces keeps its record, which a metadata store elsewhere would not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from audience.engines.base import Engine
from audience.errors import DemoTablesExist

MARKER_TABLE = "audience_demo"

_SCHEMA = pa.schema(
    [
        pa.field("table_name", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("profiles", pa.int64()),
        pa.field("created_at", pa.timestamp("us")),
        pa.field("row_count", pa.int64()),
    ]
)
"""`created_at` is in UTC, without a zone: the one timestamp type every engine reads back alike."""


def check_tables_free(engine: Engine, names: Sequence[str], *, replace: bool) -> None:
    """Refuse, naming them, the tables of `names` that exist but were not made by the demo
    (unless `replace` says to replace them anyway)."""
    if replace:
        return
    existing = set(engine.catalog().tables)
    ours = _recorded(engine, existing)
    foreign = [name for name in names if name in existing and name not in ours]
    if foreign:
        listed = ", ".join(foreign)
        raise DemoTablesExist(
            f"the engine already has {listed}, which `audience demo` did not make; it replaces "
            f"only its own tables. Point the workspace at an empty schema or database, or pass "
            f"--replace to replace {listed} with sample data"
        )


def record_tables(
    engine: Engine, names: Iterable[str], *, seed: int, profiles: int, now: datetime
) -> None:
    """Note `names` as the demo's own (keeping earlier notes of other tables)."""
    made = list(dict.fromkeys(names))
    created_at = now.astimezone(UTC).replace(tzinfo=None)
    rows = [
        row for row in _rows(engine, set(engine.catalog().tables)) if row["table_name"] not in made
    ]
    rows += [
        {
            "table_name": name,
            "seed": seed,
            "profiles": profiles,
            "created_at": created_at,
            "row_count": _count(engine, name),
        }
        for name in made
    ]
    engine.replace_table(MARKER_TABLE, _SCHEMA, [pa.RecordBatch.from_pylist(rows, _SCHEMA)])


def _recorded(engine: Engine, existing: set[str]) -> set[str]:
    """The recorded tables that still hold as many rows as the demo wrote."""
    return {
        row["table_name"]
        for row in _rows(engine, existing)
        if row["table_name"] in existing and row["row_count"] == _count(engine, row["table_name"])
    }


def _count(engine: Engine, name: str) -> int:
    query = exp.select(exp.alias_(exp.Count(this=exp.Star()), "n")).from_(
        exp.table_(name, quoted=True)
    )
    return int(engine.rows(query)[0]["n"])


def _rows(engine: Engine, existing: set[str]) -> list[dict[str, Any]]:
    if MARKER_TABLE not in existing:
        return []
    query = exp.select(*(exp.column(f.name, quoted=True) for f in _SCHEMA)).from_(
        exp.table_(MARKER_TABLE, quoted=True)
    )
    return engine.rows(query)
