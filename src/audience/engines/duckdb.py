"""DuckDB: the embedded default engine, a file in the workspace."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from sqlglot import exp

from audience.compile.catalog import Catalog, ColumnKind, column_kind
from audience.engines.base import driver_message
from audience.errors import EngineError


class DuckDBEngine:
    """Customer data in a DuckDB database file (or in memory, for tests and scratch work)."""

    dialect: ClassVar[str] = "duckdb"
    analyze_after_load: ClassVar[bool] = False

    def __init__(self, path: Path | str = ":memory:", memory_limit: str | None = None) -> None:
        try:
            self.connection = duckdb.connect(str(path))
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
            raise EngineError(driver_message(exc)) from None

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
            raise EngineError(driver_message(exc)) from None
        finally:
            self.connection.unregister("audience_incoming")

    def close(self) -> None:
        """Close the database file."""
        self.connection.close()

    def _run(self, statement: exp.Expr) -> duckdb.DuckDBPyConnection:
        try:
            return self.connection.execute(statement.sql(self.dialect))
        except duckdb.Error as exc:
            raise EngineError(driver_message(exc)) from None
