"""Runs: every run of every activation, newest first, and one run with its deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from audience.activation.lifecycle import CanceledRunShape
from audience.definitions.names import Reference
from audience.server.api.paging import Limit, Offset, page
from audience.server.app import Admin, ServedDep, Viewer
from audience.shapes import Page
from audience.store.runs import RunShape

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("")
def list_runs(
    serving: ServedDep,
    user: Viewer,
    activation: Annotated[
        Reference | None, Query(description="Only this activation's runs.")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[RunShape]:
    """Runs, newest first, with counts, errors and deliveries."""
    del user
    found = serving.workspace.runs(activation)  # the metadata store only: no turn needed
    return page([r.shape() for r in found], limit, offset)


@router.get("/{run_id}")
def run(run_id: str, serving: ServedDep, user: Viewer) -> RunShape:
    """One run (an unambiguous prefix of its id will do)."""
    del user
    return serving.workspace.store.runs.find(run_id).shape()


@router.post("/{run_id}/retry", status_code=202)
def retry(run_id: str, response: Response, serving: ServedDep, user: Admin) -> RunShape:
    """Queue a failed or canceled run again, as its next attempt for the same due time (409
    for a success, a run under way or a test send); poll it at `Location`."""
    with serving.use(user) as ws:
        queued = ws.activations.queue_retry(run_id)
    return serving.accepted(queued, response)


@router.post("/{run_id}/cancel")
def cancel(run_id: str, serving: ServedDep, user: Admin) -> CanceledRunShape:
    """Cancel a queued or failed run, or one whose worker's lease has expired (its leftovers
    at the destinations are removed; `runs cancel --json`)."""
    with serving.use(user) as ws:
        return ws.activations.cancel_run(run_id).shape()
