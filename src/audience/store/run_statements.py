"""The run log's statements a worker runs for every run (claim, queue, record, close), built
once with their parameters named: building a statement costs more than running it. `runs`
runs them; see its docstring for what each must guarantee."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import CompoundSelect, Insert, Update

from audience.store.models import ActivationRecord, DeliveryRecord, RunRecord

ACTIVE = ("queued", "running")
"""Statuses of a run that has not ended."""


def _written_out(status: str) -> ColumnElement[str]:
    """A status (one of Audience's own words, never user input) as a literal in the SQL."""
    return literal_column(f"'{status}'", String())


def _claimable() -> Select[RunRecord]:
    """The claim's query, built once (it is the worker's hottest): the oldest ready run, locked,
    skipping runs other workers hold; its parameters are `now` (the schedule's time: back-offs)
    and `lease_now` (the lease clock's: expired leases)."""
    now = bindparam("now", type_=DateTime(timezone=True))
    lease_now = bindparam("lease_now", type_=DateTime(timezone=True))
    # Statuses written out (not parameters), so that PostgreSQL's cached plan of the claim can
    # use the indexes on active runs; written when the statement is compiled, not rendered
    # again at each execution as `literal_execute` values are.
    queued, running = (_written_out(status) for status in ACTIVE)
    other = aliased(RunRecord)
    same = and_(
        other.activation_kind == RunRecord.activation_kind,
        other.activation_name == RunRecord.activation_name,
        other.id != RunRecord.id,
        ~other.is_test,
    )
    # Another run of the activation is under way; or an earlier one whose worker died is
    # waiting to be taken over, which must happen first: a worker that skips it (another
    # worker holds it, taking it over) must not start the next run beside it.
    busy = exists().where(
        same,
        other.status == running,
        or_(
            other.lease_expires_at >= lease_now,
            other.scheduled_for < RunRecord.scheduled_for,
        ),
    )
    behind = exists().where(
        same, other.status == queued, other.scheduled_for < RunRecord.scheduled_for
    )
    held = exists().where(
        ActivationRecord.kind == RunRecord.activation_kind,
        ActivationRecord.name == RunRecord.activation_name,
        or_(*(ActivationRecord.state == _written_out(state) for state in ("paused", "canceled"))),
    )
    ready = and_(
        or_(
            and_(
                RunRecord.status == queued,
                or_(RunRecord.not_before.is_(None), RunRecord.not_before <= now),
            ),
            and_(RunRecord.status == running, RunRecord.lease_expires_at < lease_now),
        ),
        ~busy,
        ~behind,
        or_(RunRecord.trigger != "schedule", RunRecord.trigger.is_(None), ~held),
    )
    return (
        select(RunRecord)
        .where(ready)
        .order_by(RunRecord.scheduled_for, RunRecord.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=RunRecord)
    )


WITHOUT_WAITING_FOR_DISK = (
    select(func.set_config("synchronous_commit", "off", true())).scalar_subquery().is_not(None)
)
"""A condition that makes a PostgreSQL write commit without waiting for the disk
(`synchronous_commit` off for its own transaction alone, set by a subquery PostgreSQL runs once:
no round trip is added); the docstring of `runs` says why that is safe where it is used."""

CLAIMABLE = _claimable()
_CLAIMED = [  # the oldest ready run, when it is queued
    RunRecord.id == CLAIMABLE.with_only_columns(RunRecord.id).scalar_subquery(),
    RunRecord.status == _written_out("queued"),
]
_STARTED: dict[str, Any] = {  # `_start`, as values of a statement
    "attempt": RunRecord.attempt + 1,
    "status": "running",
    "started_at": bindparam("started", type_=DateTime(timezone=True)),
    "ended_at": None,
    "claimed_by": bindparam("worker", type_=String()),
    "lease_expires_at": bindparam("until", type_=DateTime(timezone=True)),
    "not_before": None,
}
START_QUEUED = (
    update(RunRecord)
    .where(*_CLAIMED, WITHOUT_WAITING_FOR_DISK)
    .values(_STARTED)
    .returning(*RunRecord.__table__.columns)
)
"""The claim of a queued run in one statement (PostgreSQL): `_start` on the row `CLAIMABLE`
finds, when that row is queued — none when it is a running run whose lease expired, which the
claim's transaction then takes over or abandons."""
STARTED = select(*RunRecord.__table__.columns).where(
    RunRecord.status == "running",
    RunRecord.claimed_by == bindparam("worker", type_=String()),
    RunRecord.started_at == bindparam("started", type_=DateTime(timezone=True)),
    RunRecord.lease_expires_at == bindparam("until", type_=DateTime(timezone=True)),
)
"""The run `START_QUEUED` claimed with the same parameters, if it ran (its answer lost)."""
RELEASE = (
    update(RunRecord)
    .where(
        RunRecord.id == bindparam("run_id", type_=String()),
        RunRecord.status == "running",
        RunRecord.claimed_by == bindparam("holder", type_=String()),
        RunRecord.attempt == bindparam("holders_attempt", type_=Integer()),
    )
    .values(
        attempt=RunRecord.attempt - 1,
        status="queued",
        started_at=None,
        claimed_by=None,
        lease_expires_at=None,
    )
    .returning(RunRecord.id)
)
"""Give back a run claimed but not begun (its worker is stopping): queued as it was, for any
worker to claim at once instead of when the lease expires."""


DUE = ["activation_kind", "activation_name", "scheduled_for"]
"""The columns a real run is unique by."""
QUEUED_COLUMNS: dict[str, postgresql.ARRAY[Any]] = {
    "id": postgresql.ARRAY(String),
    "activation_kind": postgresql.ARRAY(String),
    "activation_name": postgresql.ARRAY(String),
    "version": postgresql.ARRAY(Integer),
    "scheduled_for": postgresql.ARRAY(DateTime(timezone=True)),
    "trigger": postgresql.ARRAY(String),
}
"""What tells queued runs apart, each passed as an array to `QUEUE`."""
_QUEUED = (  # the rows, one array per column, as a table
    func.unnest(*(bindparam(name, type_=array) for name, array in QUEUED_COLUMNS.items()))
    .table_valued(*QUEUED_COLUMNS)
    .render_derived()
)
QUEUE = (
    postgresql.insert(RunRecord)
    .from_select(
        [*QUEUED_COLUMNS, "status", "is_test", "attempt", "counts"],
        select(
            *_QUEUED.c,
            literal("queued"),
            false(),
            literal(0),
            literal({}, RunRecord.__table__.c.counts.type),
        ),
    )
    .on_conflict_do_nothing(index_elements=DUE, index_where=text("NOT is_test"))
    .returning(RunRecord.id)
)
"""Queue runs on PostgreSQL: the rows as arrays, one per column of `QUEUED_COLUMNS`."""


_Statement = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]] | Insert | Update
"""The kinds of statement `HotPath` runs."""


class DriverStatement:
    """A statement compiled once for PostgreSQL (when first run) and run on psycopg's own
    cursor, its rows named tuples. A worker's statements are short: SQLAlchemy's work for each
    execution (binding, result metadata, rows) cost the worker more than running them cost the
    server. Errors come out as SQLAlchemy's; a dropped connection is invalidated and its pool's
    other connections replaced, as `Connection.execute` does."""

    def __init__(self, statement: _Statement) -> None:
        self._statement = statement
        self._compiled: _Compiled | None = None

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """The statement's rows (none when it returns none), run with `values`."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = _Compiled.of(self._statement, connection.dialect)
        missing = compiled.required - values.keys()
        if missing:  # SQLAlchemy would refuse too; a fence compared with NULL matches nothing
            raise TypeError(f"no value for the parameters {sorted(missing)}")
        parameters = compiled.defaults | dict(values)
        for name, process in compiled.processors.items():
            parameters[name] = process(parameters[name])
        driver: Any = connection.connection.driver_connection
        errors = connection.dialect.loaded_dbapi.Error
        try:
            with driver.cursor(row_factory=compiled.row_factory) as cursor:
                cursor.execute(compiled.sql, parameters)
                return cursor.fetchall() if cursor.description is not None else []
        except errors as error:
            dropped = connection.dialect.is_disconnect(error, driver, None)
            if dropped:
                connection.invalidate(error)
                connection.engine.dispose(close=False)  # its siblings likely died with it
            raise DBAPIError.instance(
                compiled.sql,
                parameters,
                error,
                errors,
                connection_invalidated=dropped,
                dialect=connection.dialect,
            ) from error


@dataclass(frozen=True)
class _Compiled:
    """A statement as the driver takes it: its SQL, the parameters it needs given, the others'
    values, how the values of some types are turned into what the driver takes (JSON), how
    rows come."""

    sql: str
    required: frozenset[str]
    defaults: dict[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]
    row_factory: Any

    @classmethod
    def of(cls, statement: _Statement, dialect: Dialect) -> _Compiled:
        from psycopg.rows import namedtuple_row  # loaded with PostgreSQL's driver

        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params:  # would need rendering at each execution
            raise TypeError(f"{compiled.string!r} has parameters rendered when executed")
        if compiled.insert_prefetch or compiled.update_prefetch:  # computed by SQLAlchemy
            raise TypeError(f"{compiled.string!r} has column defaults computed when executed")
        processors = {
            name: process
            for bind, name in compiled.bind_names.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        required = frozenset(name for bind, name in compiled.bind_names.items() if bind.required)
        return cls(compiled.string, required, compiled.params, processors, namedtuple_row)


class CoreStatement:
    """A statement run as SQLAlchemy runs it (SQLite)."""

    def __init__(self, statement: _Statement) -> None:
        self._statement = statement

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """The statement's rows (none when it returns none), run with `values`."""
        result = connection.execute(self._statement, dict(values))
        return list(result) if result.returns_rows else []


HotStatement = DriverStatement | CoreStatement
"""A statement of `HotPath`, as the store's dialect runs it."""


class HotPath:
    """The statements a worker runs for every run, built and compiled once with their
    parameters named (building a statement costs more than running it): claiming a queued run
    (PostgreSQL), giving it back, reading who holds a run, recording a file, closing a run —
    the last two fenced by a holder or not."""

    def __init__(self, dialect: Dialect) -> None:
        on_postgres = dialect.name == "postgresql"

        def runnable(statement: _Statement) -> DriverStatement | CoreStatement:
            return DriverStatement(statement) if on_postgres else CoreStatement(statement)

        self.start_queued = runnable(START_QUEUED)
        self.started = runnable(STARTED)
        self.release = runnable(RELEASE)
        without_waiting = [WITHOUT_WAITING_FOR_DISK] if on_postgres else []
        run_id = bindparam("run_id", type_=String())
        fences = {
            False: [RunRecord.id == run_id],
            True: [
                RunRecord.id == run_id,
                RunRecord.status == "running",
                RunRecord.claimed_by == bindparam("holder", type_=String()),
                RunRecord.attempt == bindparam("holders_attempt", type_=Integer()),
            ],
        }
        self.holder = runnable(
            select(RunRecord.status, RunRecord.claimed_by, RunRecord.attempt).where(
                RunRecord.id == run_id
            )
        )
        columns = DeliveryRecord.__table__.columns
        names = [c.name for c in columns if c.name != "id"]
        row = select(
            *(run_id if n == "run_id" else bindparam(n, type_=columns[n].type) for n in names)
        )
        recorded = exists().where(
            DeliveryRecord.run_id == run_id,
            DeliveryRecord.uri == bindparam("uri"),
            DeliveryRecord.sha256 == bindparam("sha256"),
        )
        self.add_delivery = {
            fenced: runnable(
                insert(DeliveryRecord)
                .from_select(
                    names,
                    row.where(
                        select(RunRecord.id).where(*fence).with_for_update().exists(),
                        ~recorded,  # already recorded (an answer lost on the way): not again
                        *without_waiting,
                    ),
                )
                .returning(DeliveryRecord.id)
            )
            for fenced, fence in fences.items()
        }
        ended = {
            "status": bindparam("new_status", type_=String()),
            "ended_at": bindparam("ended", type_=DateTime(timezone=True)),
            "error": bindparam("new_error", type_=Text()),
            "error_kind": bindparam("new_error_kind", type_=String()),
            "lease_expires_at": None,
        }
        counts = {"counts": bindparam("new_counts", type_=RunRecord.__table__.c.counts.type)}
        self.finished = runnable(
            select(*RunRecord.__table__.columns).where(
                RunRecord.id == run_id,
                RunRecord.status == bindparam("new_status", type_=String()),
                RunRecord.ended_at == bindparam("ended", type_=DateTime(timezone=True)),
            )
        )
        """The run as `finish` closed it with the same parameters, if it did (its answer
        lost)."""
        finish = {
            (fenced, with_counts): update(RunRecord)
            .where(*fence)
            .values(ended | counts if with_counts else ended)
            .returning(*RunRecord.__table__.columns)
            for fenced, fence in fences.items()
            for with_counts in (False, True)
        }
        self.finish = {key: runnable(statement) for key, statement in finish.items()}
        self.finish_and_claim = runnable(_then_claim(finish[True, True]))
        """A run's end (fenced) and, in the same statement, the claim of the oldest queued run
        (`START_QUEUED`'s parameters) once the end is written: rows tagged `ended` and
        `started`. Its commit waits for the disk, as a run's end does."""


def _then_claim(finish: Any) -> Any:
    """`finish`, then the claim of the oldest queued run, as one statement. The claim sees
    the run log as it was before the end (one snapshot): the ended run still looks busy, so
    a later run of the same activation waits for the next claim."""
    ended = finish.cte("ended")
    started = (
        update(RunRecord)
        .where(*_CLAIMED, exists(select(ended.c.id)))
        .values(_STARTED)
        .returning(*RunRecord.__table__.columns)
        .cte("started")
    )
    # Each side's columns as `name.*`: written out, the statement grows past the length
    # psycopg caches the parsing of (4 KiB), and is parsed again at every run's end.
    return union_all(
        *(
            select(literal(role).label("role"), literal_column(f"{role}.*")).select_from(cte)
            for role, cte in (("ended", ended), ("started", started))
        )
    )
