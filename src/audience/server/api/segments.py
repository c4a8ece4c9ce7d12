"""Segments: the list, one segment, its insights (and breakdown), history, SQL and preview."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from audience.activation.insights import Insights, Overlap, Refresh
from audience.definitions.names import Reference
from audience.server.api.paging import Limit, Offset, page
from audience.server.app import ServedDep, Viewer
from audience.server.errors import fields_of
from audience.shapes import Page, Rows, SegmentSql
from audience.store.metadata import SegmentSummary

router = APIRouter(prefix="/segments", tags=["segments"])


@router.get("")
def list_segments(
    serving: ServedDep, user: Viewer, limit: Limit = 100, offset: Offset = 0
) -> Page[SegmentSummary]:
    """Every segment: newest version, its status, the active version (`segment list --json`)."""
    with serving.use(user) as ws:
        return page(ws.segment_summaries(), limit, offset)


@router.get("/{name:path}/insights")
def insights(
    name: str,
    serving: ServedDep,
    user: Viewer,
    by: Annotated[str | None, Query(description="Break the audience down by this.")] = None,
) -> Insights:
    """Compute the segment's insights now and record them (`segment insights --json`)."""
    with serving.use(user) as ws, fields_of("query", "by"):
        return ws.segment_insights(name, by=by)


@router.get("/{name:path}/history")
def history(name: str, serving: ServedDep, user: Viewer) -> list[Refresh]:
    """Every recorded insights refresh, oldest first (`segment history --json`)."""
    with serving.use(user) as ws:
        return ws.segment_history(name)


@router.get("/{name:path}/sql")
def sql(
    name: str,
    serving: ServedDep,
    user: Viewer,
    dialect: Annotated[
        Literal["duckdb", "postgres", "spark"] | None,
        Query(description="Render for this engine (default: the workspace's)."),
    ] = None,
) -> SegmentSql:
    """The SQL that selects the segment's customers (`segment sql [--dialect]` prints it)."""
    with serving.use(user) as ws:
        return SegmentSql(segment=name, sql=ws.segment_sql(name, dialect=dialect))


@router.get("/{name:path}/preview")
def preview(
    name: str,
    serving: ServedDep,
    user: Viewer,
    limit: Annotated[int, Query(ge=1, le=10_000, description="How many rows.")] = 10,
) -> Rows:
    """The first customers of the segment, with their profile (`segment preview --json`)."""
    with serving.use(user) as ws:
        return Rows.of(ws.segment_preview(name, limit=limit))


@router.get("/overlap")
def overlap(
    serving: ServedDep,
    user: Viewer,
    names: Annotated[list[Reference], Query(alias="name", description="Two to five segments.")],
) -> Overlap:
    """How two to five segments overlap, pair by pair (`segment overlap --json`)."""
    with serving.use(user) as ws, fields_of("query", segments="name"):
        return ws.segment_overlap(names)
