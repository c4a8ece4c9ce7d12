"""Apache Spark: the same SQL, on data beyond one machine (local mode by default).

Customer tables and Audience's own state are Parquet tables of a warehouse folder (see
`spark_tables`), read through a session of the process's one Spark application (see
`spark_session`). Results reach delivery a partition at a time as Arrow batches, so the driver
never holds a whole audience.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from sqlglot import exp

from audience.compile.catalog import Catalog, ColumnKind, column_kind
from audience.engines.base import driver_message
from audience.engines.spark_session import spark_session
from audience.engines.spark_tables import Warehouse, quoted
from audience.engines.spark_transaction import Shadows
from audience.errors import AudienceError, EngineError
from audience.settings import EngineSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SparkEngine:
    """Customer data in Parquet tables read and written by Spark."""

    dialect: ClassVar[str] = "spark"
    analyze_after_load: ClassVar[bool] = False
    cheap_transactions: ClassVar[bool] = False

    def __init__(self, settings: EngineSettings, workspace: Path) -> None:
        """Open a session on the process's Spark (starting it on first use) and register the
        workspace's tables in a database of its own."""
        root = Path(settings.warehouse)
        root = (root if root.is_absolute() else workspace / root).resolve()
        self.session = spark_session(settings, root)
        with spark_errors():
            # One database per warehouse: workspaces in one process (the tests, a server for
            # several) each see their own tables under the names the definitions use.
            database = quoted(f"audience_{uuid.uuid5(uuid.NAMESPACE_URL, root.as_uri()).hex}")
            self.session.sql(f"CREATE DATABASE IF NOT EXISTS {database} LOCATION '{root.as_uri()}'")
            self.session.sql(f"USE {database}")
            self.warehouse = Warehouse(self.session, root, settings.tables)
        # Threads share the engine (as they share DuckDB's database); a transaction is the
        # thread's that opened it, and redirects only that thread's statements.
        self._local = threading.local()

    def catalog(self) -> Catalog:
        """The tables of the warehouse (and those read from Parquet paths), with their columns."""
        with spark_errors():
            self.warehouse.register_new()
            tables: dict[str, dict[str, ColumnKind]] = {}
            for listed in self.session.catalog.listTables():
                if listed.isTemporary:
                    continue
                schema = self.session.table(quoted(listed.name)).schema
                tables[listed.name] = {
                    f.name: column_kind(f.dataType.simpleString()) for f in schema.fields
                }
        return Catalog(tables)

    def rows(self, query: exp.Expr) -> list[dict[str, Any]]:
        """All rows of a small result, converted through Arrow like a stream's."""
        with self.stream(query) as reader:
            found: list[dict[str, Any]] = reader.read_all().to_pylist()
        return found

    def stream(self, query: exp.Expr, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Arrow batches fetched one partition at a time (Spark's local iterator), so the driver
        holds one partition of the result, never all of it."""
        from pyspark.sql.pandas.types import to_arrow_schema

        with spark_errors():
            frame = self._frame(query)
            sent = to_arrow_schema(frame.schema, timezone="UTC")
            self.session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        # Spark marks columns it knows have no NULL; the other engines do not, and files
        # written from batches must not differ by it.
        schema = pa.schema([f.with_nullable(True) for f in sent])
        return pa.RecordBatchReader.from_batches(schema, _batches(frame, sent, schema))

    def execute(self, statement: exp.Expr) -> None:
        """Run a statement that returns nothing; what Parquet tables cannot do in place
        (DELETE, UPDATE, temporary tables) is done by `Warehouse`."""
        shadows = self._shadows()
        if shadows is not None:
            statement = shadows.redirect(statement)
        with spark_errors():
            if isinstance(statement, exp.Delete):
                self._delete(statement)
            elif isinstance(statement, exp.Update):
                self._update(statement)
            elif isinstance(statement, exp.Create) and statement.kind == "TABLE":
                self._create(statement)
            elif isinstance(statement, exp.Drop) and statement.kind == "TABLE":
                for dropped in statement.args.get("tables") or [statement.this]:
                    self.warehouse.drop(dropped.name)
            else:
                self.session.sql(statement.sql(self.dialect))

    def replace_table(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> None:
        """Create or replace `name` as Parquet written from the batches."""
        with spark_errors():
            self.warehouse.replace(name, schema, batches)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside change copies of the tables they write (`Shadows`), which take
        the tables' places together when the block ends, or are thrown away if it raises."""
        shadows = Shadows(self.warehouse)
        self._local.shadows = shadows
        try:
            yield
        except BaseException:
            self._local.shadows = None
            with spark_errors():
                shadows.discard()
            raise
        self._local.shadows = None
        with spark_errors():
            shadows.publish()

    def close(self) -> None:
        """Drop the session's temporary tables; the Spark application stays for the process."""
        with spark_errors():
            self.warehouse.close()

    def _shadows(self) -> Shadows | None:
        """The copies of this thread's transaction, if one is open."""
        found: Shadows | None = getattr(self._local, "shadows", None)
        return found

    def _frame(self, query: exp.Expr) -> DataFrame:
        shadows = self._shadows()
        if shadows is not None:
            query = shadows.redirect(query)
        return self.session.sql(query.sql(self.dialect))

    def _create(self, statement: exp.Create) -> None:
        temporary = any(
            isinstance(p, exp.TemporaryProperty)
            for p in (statement.args.get("properties") or exp.Properties()).expressions
        )
        target = statement.this
        if isinstance(target, exp.Schema):
            columns = ", ".join(c.sql(self.dialect) for c in target.expressions)
            self.warehouse.create(target.this.name, columns, temporary=temporary)
        elif statement.expression is not None:
            query = statement.expression.sql(self.dialect)
            self.warehouse.create_as(target.name, query, temporary=temporary)
        else:
            self.session.sql(statement.sql(self.dialect))

    def _any(self, name: str, condition: exp.Expr) -> bool:
        """Whether a row of the table meets the condition. Most deletes (a retry's leftovers)
        and many updates (a delay nobody has finished) touch nothing: look before rewriting."""
        found = exp.select("1").from_(exp.table_(name, quoted=True)).where(condition).limit(1)
        return bool(self.session.sql(found.sql(self.dialect)).take(1))

    def _delete(self, statement: exp.Delete) -> None:
        name = statement.this.name
        where = statement.args.get("where")
        doomed = where.this if where is not None else exp.true()
        if not self._any(name, doomed.copy()):
            return
        kept = (
            exp.select("*")
            .from_(exp.table_(name, quoted=True))
            .where(exp.not_(exp.func("COALESCE", exp.paren(doomed), exp.false())))
        )
        self.warehouse.rewrite(name, kept.sql(self.dialect))

    def _update(self, statement: exp.Update) -> None:
        name = statement.this.name
        where = statement.args.get("where")
        chosen = exp.func("COALESCE", exp.paren(where.this), exp.false()) if where else exp.true()
        if not self._any(name, chosen.copy()):
            return
        changes = {e.this.name: e.expression for e in statement.expressions}
        schema = self.session.table(quoted(name)).schema
        columns: list[exp.Expr] = []
        for field in schema.fields:
            current = exp.column(field.name, quoted=True)
            if field.name not in changes:
                columns.append(current)
                continue
            changed = exp.If(this=chosen.copy(), true=changes[field.name], false=current)
            kind = exp.DataType.build(field.dataType.simpleString(), dialect=self.dialect)
            columns.append(exp.alias_(exp.cast(changed, kind), field.name, quoted=True))
        rewritten = exp.select(*columns).from_(exp.table_(name, quoted=True))
        self.warehouse.rewrite(name, rewritten.sql(self.dialect))


def _batches(frame: DataFrame, sent: pa.Schema, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The result's batches, one partition's at a time."""
    from pyspark import RDD
    from pyspark.serializers import NoOpSerializer

    with spark_errors():
        # `toArrowBatchRdd` is Spark's own route to Arrow (what `toArrow` collects); each item
        # is one record batch in Arrow's IPC format. Iterating it locally runs one job per
        # partition, which is what keeps the driver's memory flat.
        encoded = frame._jdf.toArrowBatchRdd().toJavaRDD()
        messages: RDD[bytes] = RDD(encoded, frame.sparkSession.sparkContext, NoOpSerializer())
        for message in messages.toLocalIterator():
            batch = pa.ipc.read_record_batch(pa.py_buffer(message), sent)
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)


@contextmanager
def spark_errors() -> Iterator[None]:
    """Spark's and py4j's exceptions as EngineError, in one line."""
    try:
        yield
    except AudienceError:
        raise
    except Exception as exc:
        raise EngineError(spark_message(exc)) from None


def spark_message(exc: BaseException) -> str:
    """The line of a Spark error a user needs: its message, without the JVM's stack."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if isinstance(exc, PySparkException):
        # SQLSTATE class 22: data exceptions, which quote a customer's value
        about_data = (exc.getSqlState() or "").startswith("22")
        return driver_message(Exception(exc.getMessage()), about_data=about_data)
    if isinstance(exc, Py4JJavaError):
        # A task's failure arrives wrapped (`Exception thrown in awaitResult`, `Job aborted`):
        # the innermost error of Spark's own says what went wrong.
        error, cause = exc.java_exception, exc.java_exception.getCause()
        while cause is not None:
            error, cause = cause, cause.getCause()
        return driver_message(Exception(str(error.getMessage())), about_data=True)
    return driver_message(exc)
