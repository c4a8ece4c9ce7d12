"""Runs: every run of every activation, newest first, and one run with its deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from audience.server.api.paging import Limit, Offset, page
from audience.server.app import ServedDep, Viewer

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("")
def list_runs(
    serving: ServedDep,
    user: Viewer,
    activation: Annotated[str | None, Query(description="Only this activation's runs.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Runs, newest first, with counts, errors and deliveries."""
    with serving.use(user) as ws:
        found = ws.runs(activation)
    return page([r.to_json() for r in found], limit, offset)


@router.get("/{run_id}")
def run(run_id: str, serving: ServedDep, user: Viewer) -> dict[str, Any]:
    """One run (an unambiguous prefix of its id will do)."""
    with serving.use(user) as ws:
        return ws.store.runs.find(run_id).to_json()
