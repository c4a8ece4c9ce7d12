"""The Activations page: campaigns, journeys and orchestrations together, with their status,
schedule in words, next and last run; each one's page with its run history and the buttons that
launch, pause, resume, cancel or end it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience.errors import AudienceError, InvalidInput
from audience.server.app import ServedDep
from audience.server.auth import require
from audience.server.errors import status_of
from audience.server.ui.pages import PageUser, named, render

router = APIRouter(prefix="/ui")

RUNS_SHOWN = 100
"""An activation's newest runs its page lists (all of them are on the runs page)."""

KINDS = {"campaign": "Campaigns", "journey": "Journeys", "orchestration": "Orchestrations"}

Verb = Literal["schedule", "pause", "resume", "cancel", "run", "activate", "end"]

_ON_A_SCHEDULE: dict[str, tuple[Verb, ...]] = {
    "draft": ("schedule", "run"),
    "scheduled": ("run", "pause", "cancel"),
    "paused": ("resume", "cancel"),
    "error": ("run", "schedule"),
    "canceled": ("schedule", "run"),
}
ACTIONS: dict[str, dict[str, tuple[Verb, ...]]] = {
    "campaign": _ON_A_SCHEDULE | {"delivered": ("run",)},
    "orchestration": _ON_A_SCHEDULE | {"completed": ("run",)},
    "journey": {
        "draft": ("activate",),
        "active": ("run", "pause", "end"),
        "paused": ("resume", "end"),
    },
}
"""The buttons an admin sees, by kind and status (a run under way shows none)."""

LABELS = {
    "schedule": "Schedule",
    "pause": "Pause",
    "resume": "Resume",
    "cancel": "Cancel schedule",
    "run": "Run now",
    "activate": "Activate",
    "end": "End journey",
}
CONFIRM = {
    "schedule": "Put {name} on its schedule? It will send when due.",
    "run": "Send {name} now?",
    "activate": "Activate {name}? Customers start entering it at its next run.",
    "cancel": "Take {name} off its schedule? Its queued runs are canceled.",
    "end": "End {name}? No one is admitted any more.",
}
"""Launching, canceling and ending ask first; pausing and resuming do not."""

SAID = {
    "schedule": "Scheduled",
    "pause": "Paused",
    "resume": "Resumed",
    "cancel": "Schedule canceled",
    "run": "Run queued: a worker sends it now",
    "activate": "Activated",
    "end": "Ending",
    "saved": "Saved",
}


@router.get("/", response_class=HTMLResponse)
def activations_page(
    request: Request,
    serving: ServedDep,
    user: PageUser,
    kind: str | None = None,
    q: str = "",
    status: str = "",
) -> HTMLResponse:
    """Every activation (or one kind's), searched by name and filtered by status."""
    shown_kind = kind if kind in KINDS else None
    every = [a.shape() for a in serving.workspace.activations.status()]
    per_kind = {k: sum(1 for row in every if row.kind == k) for k in KINDS}
    rows = [
        row
        for row in every
        if (shown_kind is None or row.kind == shown_kind)
        and q.casefold() in row.name.casefold()
        and (not status or row.status == status)
    ]
    statuses = sorted({row.status for row in every})
    return render(
        request,
        "activations.html",
        user,
        rows=rows,
        total=len(every),
        per_kind=per_kind,
        kinds=KINDS,
        kind=shown_kind,
        q=q,
        status=status,
        statuses=statuses,
    )


@router.get("/activations/{kind}/{name:path}", response_class=HTMLResponse)
def activation_page(
    request: Request,
    kind: str,
    name: str,
    serving: ServedDep,
    user: PageUser,
    said: str | None = None,
) -> HTMLResponse:
    """One activation: its status, schedule and runs, and what an admin may do with it."""
    return _activation(request, kind, name, serving, user, said=SAID.get(said or ""))


@router.post("/activations/{kind}/{name:path}/{verb}")
def change(
    request: Request, kind: str, name: str, verb: Verb, serving: ServedDep, user: PageUser
) -> Response:
    """Launch, pause, resume, cancel or end an activation (an admin's), then show it again."""
    try:
        require(user, "admin")
        if verb not in {v for verbs in ACTIONS.get(kind, {}).values() for v in verbs}:
            raise InvalidInput(f"a {kind} cannot be asked to {verb}", field="verb")
        with serving.use(user) as ws:
            activations = ws.activations
            if verb == "run":
                activations.queue_now(kind, name)
                if serving.worker is not None:
                    serving.worker.wake()
            elif verb == "end":
                activations.end(name, release=False)
            elif verb == "activate":
                activations.schedule(kind, name)
            else:
                getattr(activations, verb)(kind, name)
    except AudienceError as error:
        return _activation(request, kind, name, serving, user, error=error)
    return RedirectResponse(f"/ui/activations/{kind}/{named(name)}?said={verb}", status_code=303)


def _activation(
    request: Request,
    kind: str,
    name: str,
    serving: ServedDep,
    user: PageUser,
    *,
    said: str | None = None,
    error: AudienceError | None = None,
) -> HTMLResponse:
    try:
        row = serving.workspace.activations.status_of(kind, name).shape()
    except AudienceError as missing:
        return render(
            request,
            "missing.html",
            user,
            status_code=status_of(missing),
            message=str(missing),
        )
    runs = [r.shape() for r in serving.workspace.store.runs.history(name, kind, limit=RUNS_SHOWN)]
    actions = ACTIONS.get(kind, {}).get(row.status, ()) if user.may("admin") else ()
    return render(
        request,
        "activation.html",
        user,
        status_code=200 if error is None else status_of(error),
        row=row,
        runs=runs,
        actions=[(verb, LABELS[verb], CONFIRM.get(verb, "").format(name=name)) for verb in actions],
        kind_label=KINDS.get(kind, kind),
        said=said,
        error=None if error is None else " ".join(str(error).split()),
    )
