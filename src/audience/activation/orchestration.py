"""Orchestrations (SPEC §6): a read-only query's result, streamed to a destination.

Applying one proves its query read-only by parsing it (`compile.readonly`) and lets the engine
plan it (bad SQL: the engine's message, nothing sent). A run checks it all again, checks the
destination, then streams the rows straight into `deliver` — one pass, no snapshot. With
`incremental_by`, only rows above the last successful run's high-water mark are sent, and the
run records its own mark: the greatest value it sent (or the previous mark, if it sent none).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import JsonValue
from sqlglot import exp

from audience.activation.recording import RunRecording
from audience.activation.setting import CampaignSetting, Progress, Silent
from audience.compile.catalog import Catalog
from audience.compile.sql import column
from audience.definitions.destination import Destination
from audience.definitions.orchestration import Orchestration
from audience.delivery.destinations.base import Delivery, DestinationClient
from audience.delivery.encryption import check_key
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, discard_unfinished, final_names
from audience.engines.base import Engine
from audience.errors import EngineError, UnknownReference, UnsafeQuery
from audience.shapes import Rows, Shape, json_value
from audience.store.runs import DeliveredFile, Run, RunLog

SOURCE = "source"
"""The alias the user's query gets when Audience wraps it."""
HIGH_WATER_MARK = "high_water_mark"
"""The run's counts key holding what the next incremental run starts above."""


@dataclass(frozen=True)
class OrchestrationPreview:
    """The first rows an orchestration would send, and the mark they are above."""

    table: pa.Table
    high_water_mark: JsonValue
    total: int
    """How many rows the next run would send in all."""

    def shape(self) -> OrchestrationPreviewShape:
        """What `orchestration preview --json` prints and the API answers."""
        return OrchestrationPreviewShape(
            columns=self.table.column_names,
            rows=Rows.of(self.table, _json_value),
            high_water_mark=self.high_water_mark,
            total=self.total,
        )


class OrchestrationPreviewShape(Shape):
    """The first rows an orchestration's next run would send: the query's columns, the rows,
    the high-water mark they are above (null: none) and how many rows it would send in all."""

    columns: list[str]
    rows: Rows
    high_water_mark: JsonValue
    total: int


def destination_of(
    orchestration: Orchestration, destinations: Mapping[str, Destination]
) -> Destination:
    """The destination the orchestration sends to, with its file options over the
    destination's."""
    destination = destinations.get(orchestration.destination)
    if destination is None:
        raise UnknownReference(
            f"destination {orchestration.destination!r} does not exist", field="destination"
        )
    return orchestration.sent_to(destination)


def checked_query(orchestration: Orchestration, engine: Engine, catalog: Catalog) -> exp.Query:
    """The orchestration's query, proven read-only and planned by the engine; its columns
    must include `incremental_by`."""
    from audience.compile.readonly import read_only_query

    query = read_only_query(orchestration.query, dialect=engine.dialect, catalog=catalog)
    # Named in the query (DuckDB renames a repeated column in its result, `id_1`, and files
    # would carry a name nobody wrote) and in the engine's result (`*` over a join).
    _refuse_repeated([n for n in query.named_selects if n != "*"])
    probe = exp.select("*").from_(exp.alias_(query.subquery(), SOURCE)).limit(0)
    try:
        columns = list(engine.stream(probe).schema.names)
    except EngineError as error:
        raise UnsafeQuery(f"the engine rejected it: {error}", field="query") from None
    _refuse_repeated(columns)
    if orchestration.incremental_by is not None and orchestration.incremental_by not in columns:
        raise UnknownReference(
            f"the query returns no column {orchestration.incremental_by!r} "
            f"(it returns {', '.join(columns)})",
            field="incremental_by",
        )
    return query


def _refuse_repeated(columns: list[str]) -> None:
    """UnsafeQuery when a column name comes twice (names are compared as SQL does, without
    case)."""
    folded = [c.casefold() for c in columns]
    repeated = sorted({c for c in columns if folded.count(c.casefold()) > 1})
    if repeated:
        raise UnsafeQuery(
            f"returns the column {', '.join(map(repr, repeated))} more than once; "
            "give each column its own name (AS …)",
            field="query",
        )


def check_orchestration(
    orchestration: Orchestration, setting: CampaignSetting, now: datetime
) -> None:
    """Everything a run checks before sending, done when the orchestration is applied."""
    destination = destination_of(orchestration, setting.destinations)
    check_key(destination)
    checked_query(orchestration, setting.engine, setting.ctx.catalog)
    final_names(destination, _names(orchestration, now), run_id="0" * 32, rows=1)


def preview_orchestration(
    orchestration: Orchestration, setting: CampaignSetting, rows: int = 10
) -> OrchestrationPreview:
    """The first `rows` rows the next run would send (above the current high-water mark)."""
    query = checked_query(orchestration, setting.engine, setting.ctx.catalog)
    mark = last_high_water_mark(orchestration, setting.runs)
    sent = _sent(orchestration, query, mark, ordered=False)
    reader = setting.engine.stream(sent.limit(rows))
    with reader:
        table = reader.read_all()
    counted = exp.select(exp.alias_(exp.func("COUNT", exp.Star()), "n")).from_(
        sent.subquery("sent")
    )
    return OrchestrationPreview(table, mark, int(setting.engine.rows(counted)[0]["n"]))


def run_orchestration(
    orchestration: Orchestration,
    setting: CampaignSetting,
    recording: RunRecording,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Send the query's result for the run being recorded; return its counts."""
    progress = progress or Silent()
    run = recording.run
    destination = destination_of(orchestration, setting.destinations)
    query = checked_query(orchestration, setting.engine, setting.ctx.catalog)
    mark = last_high_water_mark(orchestration, setting.runs)
    client = setting.open_client(destination)
    client.check()
    # Parts are cut from one order on every attempt, so a retry keeps what was published.
    ordered = destination.file.split
    statement = _sent(orchestration, query, mark, ordered=ordered)
    progress.step(f"{orchestration.name} → {destination.name}")
    watch = _Watch(orchestration.incremental_by)
    files: list[DeliveredFile] = []

    def published(delivery: Delivery) -> None:
        files.append(recording.published(delivery))
        # What is at the destination so far: a run that fails later says what it sent.
        data = [f for f in files if f.role == "data"]
        recording.counts = {"rows": sum(f.rows for f in data), "files": len(data)}

    with setting.engine.stream(statement) as reader:
        # Each file is recorded the moment it is published, before the next part is sent.
        deliver(
            destination,
            watch.batches(reader, progress),
            names=_names(orchestration, run.scheduled_for),
            run_id=run.id,
            client=client,
            schema=reader.schema,
            earlier=recording.earlier_files(),
            references=setting.references,
            on_published=published,
            before_publish=recording.settle,
        )
    counts: dict[str, Any] = {
        "rows": watch.rows,
        "files": sum(1 for f in files if f.role == "data"),
    }
    if orchestration.incremental_by is not None:
        counts["incremental_by"] = orchestration.incremental_by
        counts[HIGH_WATER_MARK] = watch.mark if watch.mark is not None else mark
    return counts


def discard_orchestration_leftovers(
    orchestration: Orchestration,
    destinations: Mapping[str, Destination],
    open_client: Callable[[Destination], DestinationClient],
    run: Run,
) -> int:
    """Remove what the run's dead attempt left half-written once the run is canceled; how many
    leftovers there were."""
    destination = destination_of(orchestration, destinations)
    names = _names(orchestration, run.scheduled_for)
    return discard_unfinished(destination, names, run_id=run.id, client=open_client(destination))


def last_high_water_mark(orchestration: Orchestration, runs: RunLog) -> Any:
    """What the last successful run sent up to (None: send everything)."""
    if orchestration.incremental_by is None:
        return None
    successes = runs.successes("orchestration", orchestration.name)
    return runs.get(successes[-1]).counts.get(HIGH_WATER_MARK) if successes else None


def _names(orchestration: Orchestration, now: datetime) -> NameValues:
    return NameValues(activation_name=orchestration.name, now=now, group_name="all")


def _sent(
    orchestration: Orchestration, query: exp.Query, mark: Any, *, ordered: bool
) -> exp.Select:
    """The user's query, wrapped: above the high-water mark (with a value, on the first run),
    in a stable order if asked."""
    statement = exp.select("*").from_(exp.alias_(query.subquery(), SOURCE))
    if orchestration.incremental_by is not None:
        watched = column(orchestration.incremental_by)
        statement = statement.where(
            exp.not_(exp.Is(this=watched, expression=exp.Null()))
            if mark is None
            else exp.GT(this=watched, expression=_literal(mark))
        )
    if ordered:
        # By position: the query's columns may have any names, even ones that need quoting.
        width = len(query.named_selects) or 1
        statement = statement.order_by(*(exp.Literal.number(i) for i in range(1, width + 1)))
    return statement


def _literal(mark: Any) -> exp.Expr:
    if isinstance(mark, bool):
        return exp.Boolean(this=mark)
    if isinstance(mark, int | float):
        return exp.Literal.number(mark)
    return exp.Literal.string(str(mark))


def _json_value(value: object) -> JsonValue:
    # A whole decimal is a number, so a high-water mark of it compares as one (`_literal`).
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return float(value)
    return json_value(value)


class _Watch:
    """Counts the rows going by and keeps the greatest value of the incremental column."""

    def __init__(self, incremental_by: str | None) -> None:
        self.incremental_by = incremental_by
        self.rows = 0
        self.mark: Any = None

    def batches(
        self, reader: Iterable[pa.RecordBatch], progress: Progress
    ) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            self.rows += batch.num_rows
            progress.advance(batch.num_rows)
            if self.incremental_by is not None and batch.num_rows:
                greatest = pc.max(batch.column(self.incremental_by)).as_py()
                if greatest is not None:
                    value = _json_value(greatest)
                    if self.mark is None or greatest > self._compared(self.mark, greatest):
                        self.mark = value
            yield batch

    @staticmethod
    def _compared(mark: Any, like: Any) -> Any:
        """The recorded mark in the type of `like`, to compare the two."""
        if isinstance(like, datetime):
            return datetime.fromisoformat(mark)
        if isinstance(like, date):
            return date.fromisoformat(mark)
        if isinstance(like, decimal.Decimal):
            return decimal.Decimal(str(mark))
        return mark
