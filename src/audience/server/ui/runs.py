"""Runs: every run, newest first, and one run with its counts, deliveries, errors and retries;
an admin retries a failed run from its page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.errors import AudienceError
from audience.server.app import ServedDep
from audience.server.auth import require
from audience.server.errors import status_of
from audience.server.ui.pages import PageUser, error_page, render

router = APIRouter(prefix="/ui")

PAGE = 50


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request, serving: ServedDep, user: PageUser, status: str = "", page: int = 1
) -> HTMLResponse:
    """Runs, newest first, fifty to a page, optionally of one status."""
    page = max(1, page)
    # One more than a page: whether there is an older page, without counting them all.
    found = serving.workspace.store.runs.history(
        status=status or None, limit=PAGE + 1, offset=(page - 1) * PAGE
    )
    shown = [r.shape() for r in found[:PAGE]]
    return render(
        request,
        "runs.html",
        user,
        runs=shown,
        status=status,
        page=page,
        more=len(found) > PAGE,
        statuses=("queued", "running", "succeeded", "failed", "canceled"),
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, run_id: str, serving: ServedDep, user: PageUser, said: str | None = None
) -> HTMLResponse:
    """One run."""
    return _run(request, run_id, serving, user, said="Retry queued" if said == "retry" else None)


@router.post("/runs/{run_id}/retry")
def retry(request: Request, run_id: str, serving: ServedDep, user: PageUser) -> Response:
    """Queue a failed or canceled run again (an admin's), for the worker."""
    try:
        require(user, "admin")
        with serving.use(user) as ws:
            queued = ws.activations.queue_retry(run_id)
        if serving.worker is not None:
            serving.worker.wake()
    except AudienceError as error:
        return _run(request, run_id, serving, user, error=error)
    return RedirectResponse(f"/ui/runs/{queued.id}?said=retry", status_code=303)


def _run(
    request: Request,
    run_id: str,
    serving: ServedDep,
    user: PageUser,
    *,
    said: str | None = None,
    error: AudienceError | None = None,
) -> HTMLResponse:
    try:
        run = serving.workspace.store.runs.find(run_id).shape()
    except AudienceError as missing:
        return error_page(request, missing, user)
    return render(
        request,
        "run.html",
        user,
        status_code=200 if error is None else status_of(error),
        run=run,
        retryable=user.may("admin") and run.status in ("failed", "canceled") and not run.test,
        said=said,
        error=None if error is None else " ".join(str(error).split()),
    )
