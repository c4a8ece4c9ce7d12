"""Load the sample customer 360 into any engine.

DuckDB generates it in place; other engines receive it from an in-memory DuckDB, streamed as Arrow
batches, so every engine holds exactly the same rows for the same seed and day. Only tables the
demo made itself are replaced (see `ownership`), unless the caller says to replace others.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from audience.compile.dates import utc_today
from audience.demo.generator import SampleTables, generate
from audience.demo.ownership import check_tables_free, record_tables
from audience.engines.base import Engine
from audience.engines.duckdb import DuckDBEngine
from audience.settings import TableSettings

COPY_BATCH_ROWS = 200_000


def load_sample(
    engine: Engine,
    tables: TableSettings,
    *,
    profiles: int,
    seed: int,
    now: datetime,
    replace: bool = False,
) -> None:
    """Create the three sample tables in `engine`, or replace them where the demo made them
    (DemoTablesExist names any other table in the way, unless `replace`)."""
    names = SampleTables(
        profile=tables.profile, source=tables.source, events=tables.events, id=tables.id
    )
    made = (names.profile, names.source, names.events)
    check_tables_free(engine, made, replace=replace)
    _fill(engine, names, profiles=profiles, seed=seed, now=now)
    record_tables(engine, made, seed=seed, profiles=profiles, now=now)


def _fill(engine: Engine, names: SampleTables, *, profiles: int, seed: int, now: datetime) -> None:
    today = utc_today(now)
    if isinstance(engine, DuckDBEngine):
        generate(engine.connection, profiles=profiles, seed=seed, today=today, tables=names)
        return
    scratch = DuckDBEngine()
    try:
        generate(scratch.connection, profiles=profiles, seed=seed, today=today, tables=names)
        for table in (names.profile, names.source, names.events):
            query = exp.select(exp.Star()).from_(exp.table_(table, quoted=True))
            reader = scratch.stream(query, COPY_BATCH_ROWS)
            engine.replace_table(table, reader.schema, reader)
    finally:
        scratch.close()
