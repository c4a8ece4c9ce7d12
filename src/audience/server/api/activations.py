"""Activations: the Activations page (status), a campaign's plan, and schedule, pause, resume
and cancel for campaigns, orchestrations and journeys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from audience.activation.lifecycle import ActivationStatus
from audience.server.app import Admin, Editor, ServedDep, Viewer

router = APIRouter(tags=["activations"])

Kind = Literal["campaign", "journey", "orchestration"]
PLURALS: dict[str, Kind] = {
    "campaigns": "campaign",
    "journeys": "journey",
    "orchestrations": "orchestration",
}


@router.get("/status")
def status(
    serving: ServedDep,
    user: Viewer,
    kind: Annotated[Kind | None, Query(description="Only activations of this kind.")] = None,
) -> list[dict[str, Any]]:
    """Every activation: kind, name, status, schedule in words, next due, last run
    (`audience status --json`)."""
    with serving.use(user) as ws:
        return [s.to_json() for s in ws.activations.status(kind)]


@router.get("/campaigns/{name}/plan")
def plan(name: str, serving: ServedDep, user: Editor) -> dict[str, Any]:
    """Who would land in each sub-audience and group if the campaign ran now; nothing is sent
    (`campaign plan --json`)."""
    with serving.use(user) as ws:
        return ws.campaign_plan(name).to_json()


@router.get("/{kinds}/{name}/status")
def status_of(
    kinds: Literal["campaigns", "journeys", "orchestrations"],
    name: str,
    serving: ServedDep,
    user: Viewer,
) -> dict[str, Any]:
    """One activation's row of the Activations page."""
    with serving.use(user) as ws:
        return ws.activations.status_of(PLURALS[kinds], name).to_json()


@router.post("/{kinds}/{name}/run", status_code=202)
def run(
    kinds: Literal["campaigns", "orchestrations", "journeys"],
    name: str,
    response: Response,
    serving: ServedDep,
    user: Admin,
) -> dict[str, Any]:
    """Queue a run now, for the server's worker (or any `audience worker`) to send; poll the
    run at `Location` (`GET /runs/{run_id}`) until it has succeeded or failed."""
    with serving.use(user) as ws:
        queued = ws.activations.queue_now(PLURALS[kinds], name)
    if serving.worker is not None:
        serving.worker.wake()
    response.headers["Location"] = f"/runs/{queued.id}"
    return queued.to_json()


@router.post("/{kinds}/{name}/{verb}")
def change_schedule(
    kinds: Literal["campaigns", "orchestrations"],
    name: str,
    verb: Literal["schedule", "pause", "resume", "cancel"],
    serving: ServedDep,
    user: Admin,
) -> dict[str, Any]:
    """Put the activation on its schedule, pause it, resume it or cancel it (409 when its
    state does not allow that); answers with its new status."""
    with serving.use(user) as ws:
        changed: ActivationStatus = getattr(ws.activations, verb)(PLURALS[kinds], name)
    return changed.to_json()
