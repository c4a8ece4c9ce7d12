"""The order summary in the engine (`compile.summary`): built when missing, rebuilt when stale.

Insights read it only when it is current, that is when
- its recipe — the SQL that built it — is the one they would build now: the same day (the text
  carries the day the year starts), the same tables and columns;
- the event table's fingerprint (rows, latest order time) is still what it was when it was built.

Otherwise it is rebuilt first, in one transaction, so a stale summary never answers: the first
insights after a load of orders, or on a new day, pay for the rebuild. An edit in place of an
older order (a return marked weeks later) leaves the fingerprint as it was: such an edit shows at
the next rebuild — the worker rebuilds a kept summary once a day — and insights say when the
summary was built (`orders_as_of`), so the figures never hide their age.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlglot import exp

from audience.activation.ledger import create_table
from audience.compile.conditions import CompileContext
from audience.compile.sql import string, table
from audience.compile.summary import (
    STATE_COLUMNS,
    SUMMARY,
    SUMMARY_STATE,
    fingerprint_query,
    state_query,
    summary_query,
)
from audience.engines.base import Engine
from audience.errors import EngineError

_BUILDING = threading.Lock()
"""Threads of one process share a database: one of them checks and rebuilds at a time."""


def current_summary(engine: Engine, ctx: CompileContext) -> datetime:
    """When the order summary was built (UTC), after rebuilding it if it was missing or stale."""
    recipe = summary_query(ctx).sql(engine.dialect)
    with _BUILDING:
        built_at = _current(engine, ctx, recipe)
        if built_at is not None:
            return built_at
        try:
            return _build(engine, ctx, recipe)
        except EngineError:
            # Another process building it at the same moment (PostgreSQL: both create the
            # table; one fails). Its summary, once committed, serves.
            built_at = _current(engine, ctx, recipe)
            if built_at is None:
                raise
            return built_at


def rebuild_kept_summary(engine: Engine, ctx: CompileContext) -> datetime | None:
    """Rebuild the order summary, current or not, if one is kept (insights made it once):
    what the fingerprint cannot see (an edit in place) is then read too. When it was built, or
    None when there is none."""
    if not _kept(engine, ctx):
        return None
    with _BUILDING:
        return _build(engine, ctx, summary_query(ctx).sql(engine.dialect))


def _kept(engine: Engine, ctx: CompileContext) -> bool:
    return SUMMARY_STATE in ctx.catalog.tables or SUMMARY_STATE in engine.catalog().tables


def _current(engine: Engine, ctx: CompileContext, recipe: str) -> datetime | None:
    """When the summary was built, if it is current; else None."""
    if not _kept(engine, ctx):
        return None
    recorded = engine.rows(state_query())
    if len(recorded) != 1 or recorded[0]["recipe"] != recipe:
        return None
    now = engine.rows(fingerprint_query(ctx))[0]
    state = recorded[0]
    if (state["event_rows"], state["latest_event"]) != (now["event_rows"], now["latest_event"]):
        return None
    return _utc(state["built_at"])


def _build(engine: Engine, ctx: CompileContext, recipe: str) -> datetime:
    """Rebuild the summary and record its provenance, together."""
    built_at = ctx.now.astimezone(UTC).replace(microsecond=0)
    with engine.transaction():
        # The fingerprint is taken first: orders that land while the summary is built make it
        # look stale next time, never fresh.
        fingerprint = engine.rows(fingerprint_query(ctx))[0]
        engine.execute(exp.Drop(tables=[table(SUMMARY)], kind="TABLE", exists=True))
        engine.execute(exp.Create(this=table(SUMMARY), kind="TABLE", expression=summary_query(ctx)))
        if engine.analyze_after_load:
            engine.execute(exp.Analyze(tables=[table(SUMMARY)]))
        create_table(engine, SUMMARY_STATE, STATE_COLUMNS)
        engine.execute(exp.delete(table(SUMMARY_STATE)))
        engine.execute(
            exp.insert(
                exp.select(
                    string(recipe),
                    _number(fingerprint["event_rows"]),
                    _text(fingerprint["latest_event"]),
                    exp.cast(
                        string(built_at.strftime("%Y-%m-%d %H:%M:%S")),
                        exp.DataType.Type.TIMESTAMP,
                    ),
                ),
                table(SUMMARY_STATE),
                columns=[name for name, _ in STATE_COLUMNS],
            )
        )
    return built_at


def _number(value: Any) -> exp.Expr:
    return exp.Literal.number(int(value or 0))


def _text(value: str | None) -> exp.Expr:
    return exp.null() if value is None else string(value)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
