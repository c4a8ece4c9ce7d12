"""DuckDB: the embedded default engine, a file in the workspace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from sqlglot import exp

from audience.compile.catalog import Catalog, ColumnKind, column_kind
from audience.engines.base import driver_message
from audience.errors import DatabaseBusy, EngineError


class DuckDBEngine:
    """Customer data in a DuckDB database file (or in memory, for tests and scratch work)."""

    dialect: ClassVar[str] = "duckdb"
    analyze_after_load: ClassVar[bool] = False
    cheap_transactions: ClassVar[bool] = True

    def __init__(
        self,
        path: Path | str = ":memory:",
        memory_limit: str | None = None,
        *,
        lock_timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Open the database; if another process holds it (DuckDB has one writing process),
        wait up to `lock_timeout` seconds for it, telling `on_wait` once what holds it."""
        try:
            self.connection = _connect(str(path), lock_timeout, on_wait)
            # DuckDB draws a progress bar on standard output for queries over two seconds,
            # which would corrupt `--json` output and files written to stdout.
            self.connection.execute("set enable_progress_bar = false")
            if memory_limit is not None:
                # SET takes no parameters; the settings model admits only "<number><unit>".
                self.connection.execute(f"set memory_limit = '{memory_limit}'")
        except duckdb.Error as exc:
            raise EngineError(
                f"cannot open DuckDB database {path}: {driver_message(exc)}"
            ) from None

    def catalog(self) -> Catalog:
        """Tables and views of the main schema with their columns, in column order."""
        found = self.connection.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = current_schema() order by table_name, ordinal_position"
        ).fetchall()
        tables: dict[str, dict[str, ColumnKind]] = {}
        for table, name, data_type in found:
            tables.setdefault(table, {})[name] = column_kind(data_type)
        return Catalog(tables)

    def rows(self, query: exp.Expr) -> list[dict[str, Any]]:
        """All rows of a small result as dictionaries."""
        cursor = self._run(query)
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def stream(self, query: exp.Expr, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Arrow batches straight from DuckDB's result, without materialising it in Python."""
        try:
            return self.connection.sql(query.sql(self.dialect)).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise EngineError(_message(exc)) from None

    def execute(self, statement: exp.Expr) -> None:
        """Run a statement that returns nothing."""
        self._run(statement)

    def replace_table(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> None:
        """Create or replace `name` from Arrow batches, in one transaction."""
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        target = exp.to_identifier(name, quoted=True).sql(self.dialect)
        self.connection.register("audience_incoming", reader)
        try:
            self.connection.execute(
                f"create or replace table {target} as select * from audience_incoming"  # noqa: S608
            )
        except duckdb.Error as exc:
            raise EngineError(_message(exc)) from None
        finally:
            self.connection.unregister("audience_incoming")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together, or roll back if the block raises."""
        self.connection.begin()
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        try:
            self.connection.commit()
        except duckdb.Error as exc:
            raise EngineError(_message(exc)) from None

    def close(self) -> None:
        """Close the database file."""
        self.connection.close()

    def _run(self, statement: exp.Expr) -> duckdb.DuckDBPyConnection:
        try:
            return self.connection.execute(statement.sql(self.dialect))
        except duckdb.Error as exc:
            raise EngineError(_message(exc)) from None


_DATA_ERRORS = (duckdb.DataError, duckdb.InvalidInputException)
"""DuckDB's errors about values: conversion, out of range, input that does not parse."""


def _message(exc: duckdb.Error) -> str:
    return driver_message(exc, about_data=isinstance(exc, _DATA_ERRORS))


_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def _connect(
    path: str, lock_timeout: float, on_wait: Callable[[str], None] | None
) -> duckdb.DuckDBPyConnection:
    """Connect, waiting with growing pauses while another process holds the file's lock."""
    deadline = time.monotonic() + lock_timeout
    pause = 0.05
    told = False
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            holder = _HOLDER.search(str(exc))
            if holder is None:
                raise
            who = f"process {holder['pid']} ({Path(holder['program']).name})"
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"the customer database {path} is in use by {who}; waited "
                    f"{lock_timeout:g} s (engine.lock_timeout) for it"
                ) from None
            if not told and on_wait is not None:
                on_wait(f"waiting for the customer database, held by {who}")
                told = True
            # Polling is the only way: DuckDB offers no wait on its file lock.
            time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 2, 1.0)
