"""PostgreSQL: for brands whose customer data already lives in Postgres."""

from __future__ import annotations

import io
import itertools
import uuid
import weakref
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql
from sqlglot import exp

from audience.compile.catalog import Catalog, ColumnKind, column_kind
from audience.engines.base import driver_message
from audience.errors import EngineError

_ARROW_TO_POSTGRES: tuple[tuple[str, str], ...] = (
    ("bool", "boolean"),
    ("int8", "smallint"),
    ("int16", "smallint"),
    ("int32", "integer"),
    ("int64", "bigint"),
    ("double", "double precision"),
    ("float", "real"),
    ("date32", "date"),
    ("timestamp", "timestamp"),
    ("string", "text"),
    ("large_string", "text"),
)


_ARROW_BY_POSTGRES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


class PostgresEngine:
    """Customer data in a PostgreSQL schema; Audience's own tables go beside it."""

    dialect: ClassVar[str] = "postgres"
    analyze_after_load: ClassVar[bool] = True
    cheap_transactions: ClassVar[bool] = True

    def __init__(self, url: str, schema: str = "public") -> None:
        self.schema = schema
        self._streams: weakref.WeakSet[Generator[pa.RecordBatch]] = weakref.WeakSet()
        try:
            self.connection = psycopg.connect(url, autocommit=True)
            self.connection.execute(
                sql.SQL("create schema if not exists {}").format(sql.Identifier(schema))
            )
            self.connection.execute(sql.SQL("set search_path to {}").format(sql.Identifier(schema)))
            # relative dates are day boundaries in UTC (SPEC §2), whatever the server's zone
            self.connection.execute("set time zone 'UTC'")
        except psycopg.Error as exc:
            raise EngineError(f"cannot connect to PostgreSQL: {driver_message(exc)}") from None

    def catalog(self) -> Catalog:
        """Tables and views of the schema with their columns, in column order."""
        found = self.connection.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = %s order by table_name, ordinal_position",
            [self.schema],
        ).fetchall()
        tables: dict[str, dict[str, ColumnKind]] = {}
        for table, name, data_type in found:
            tables.setdefault(table, {})[name] = column_kind(data_type)
        return Catalog(tables)

    def rows(self, query: exp.Expr) -> list[dict[str, Any]]:
        """All rows of a small result as dictionaries."""
        with self.connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            self._run(cursor, query)
            return list(cursor.fetchall())

    def stream(self, query: exp.Expr, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Rows through a server-side cursor, converted to Arrow a batch at a time."""
        self._end_streams()
        batches = self._batches(query, batch_rows)
        self._streams.add(batches)
        first = next(batches)
        return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))

    def _batches(self, query: exp.Expr, batch_rows: int) -> Generator[pa.RecordBatch]:
        """The schema's batch first (empty), then the rows, every batch of the same schema."""
        with (
            self.connection.transaction(),
            self.connection.cursor(name=f"audience_{uuid.uuid4().hex}") as cursor,
        ):
            self._run(cursor, query)
            schema = pa.schema(
                [pa.field(d.name, self._arrow_type(d)) for d in cursor.description or []]
            )
            yield pa.RecordBatch.from_pylist([], schema=schema)
            while rows := self._fetch(cursor, batch_rows):
                columns = zip(*rows, strict=True)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema,
                )

    @staticmethod
    def _fetch(cursor: psycopg.Cursor[Any], batch_rows: int) -> list[Any]:
        # a server-side cursor computes rows as they are fetched: a value that will not
        # convert fails here, many rows in
        try:
            return cursor.fetchmany(batch_rows)
        except psycopg.Error as exc:
            raise EngineError(_message(exc)) from None

    def _arrow_type(self, column: psycopg.Column) -> pa.DataType:
        """The Arrow type of a result column, from PostgreSQL's type (so batches agree)."""
        info = self.connection.adapters.types.get(column.type_code)
        name = info.name if info is not None else ""
        if name == "numeric":
            if column.precision is not None and column.scale is not None:
                return pa.decimal128(column.precision, column.scale)
            return pa.float64()  # unconstrained numeric (sums, averages)
        return _ARROW_BY_POSTGRES.get(name, pa.string())

    def execute(self, statement: exp.Expr) -> None:
        """Run a statement that returns nothing."""
        with self.connection.cursor() as cursor:
            self._run(cursor, statement)

    def replace_table(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> None:
        """Create or replace `name`, fill it through COPY and gather its statistics, in one
        transaction (a table just filled has none until autovacuum comes by, or never where
        it is off, and PostgreSQL then plans nested loops over what it takes for one row)."""
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_postgres_type(f.type)))
            for f in schema
        )
        target = sql.Identifier(name)
        options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        try:
            with self.connection.transaction(), self.connection.cursor() as cursor:
                cursor.execute(sql.SQL("drop table if exists {}").format(target))
                cursor.execute(sql.SQL("create table {} ({})").format(target, columns))
                copy_sql = sql.SQL("copy {} from stdin (format csv)").format(target)
                with cursor.copy(copy_sql) as copy:
                    for batch in batches:
                        buffer = io.BytesIO()
                        pa_csv.write_csv(batch, buffer, options)
                        copy.write(buffer.getvalue())
                cursor.execute(sql.SQL("analyze {}").format(target))
        except psycopg.Error as exc:
            raise EngineError(_message(exc)) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together, or roll back if the block raises."""
        self._end_streams()
        try:
            with self.connection.transaction():
                yield
        except psycopg.Error as exc:
            raise EngineError(_message(exc)) from None

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def _end_streams(self) -> None:
        """Close streams still open on the connection (one stopped half-way by a failed
        delivery): their transaction and cursor would block every later statement."""
        for stream in list(self._streams):
            stream.close()
        self._streams.clear()

    def _run(self, cursor: psycopg.Cursor[Any], statement: exp.Expr) -> None:
        if not isinstance(cursor, psycopg.ServerCursor):  # a stream runs its own query
            self._end_streams()
        try:
            # The SQL is complete text without placeholders: values are literals built by sqlglot.
            cursor.execute(statement.sql(self.dialect).encode())
        except psycopg.Error as exc:
            raise EngineError(_message(exc)) from None


def _message(exc: psycopg.Error) -> str:
    # SQLSTATE class 22, data exceptions: a value that does not convert, out of range, …
    return driver_message(exc, about_data=isinstance(exc, psycopg.DataError))


def _postgres_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision}, {arrow_type.scale})"
    name = str(arrow_type)
    for prefix, postgres in _ARROW_TO_POSTGRES:
        if name.startswith(prefix):
            return postgres
    raise EngineError(f"cannot store Arrow type {name} in PostgreSQL")
