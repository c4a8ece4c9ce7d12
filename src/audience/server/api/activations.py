"""Activations: the Activations page (status), a campaign's plan, and schedule, pause, resume
and cancel for campaigns, orchestrations and journeys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from audience.activation.journey import JourneyCounts, Step
from audience.activation.lifecycle import ActivationStatus, StatusRow
from audience.activation.orchestration import OrchestrationPreviewShape
from audience.activation.plan import CampaignPlan
from audience.activation.results import CampaignResults, parse_window
from audience.delivery.destinations.base import DestinationCheck
from audience.server.api.paging import Limit, Offset, page
from audience.server.app import Admin, Editor, ServedDep, Viewer
from audience.server.errors import fields_of
from audience.shapes import Page
from audience.store.runs import RunShape

router = APIRouter(tags=["activations"])

Kind = Literal["campaign", "journey", "orchestration"]


@router.get("/status")
def status(
    serving: ServedDep,
    user: Viewer,
    kind: Annotated[Kind | None, Query(description="Only activations of this kind.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[StatusRow]:
    """Every activation: kind, name, status, schedule in words, next due, last run (each item
    as `audience status --json` prints it)."""
    del user  # signed in as a viewer: that is all status needs
    # The metadata store only: no turn on the customer database.
    found = serving.workspace.activations.status(kind)
    return page([s.shape() for s in found], limit, offset)


@router.get("/campaigns/{name:path}/plan")
def plan(name: str, serving: ServedDep, user: Editor) -> CampaignPlan:
    """Who would land in each sub-audience and group if the campaign ran now; nothing is sent
    (`campaign plan --json`)."""
    with serving.use(user) as ws:
        return ws.campaign_plan(name)


def _routes_of(kinds: str, kind: Kind, *, verbs: bool) -> None:
    """The routes of one kind of activation: its status, a run now, and (when it has a
    schedule to change by hand) schedule, pause, resume and cancel."""

    @router.get(f"/{kinds}/{{name:path}}/status", name=f"{kind}_status")
    def status_of(name: str, serving: ServedDep, user: Viewer) -> StatusRow:
        """One activation's row of the Activations page."""
        del user
        return serving.workspace.activations.status_of(kind, name).shape()

    @router.post(f"/{kinds}/{{name:path}}/run", status_code=202, name=f"{kind}_run")
    def run(name: str, response: Response, serving: ServedDep, user: Admin) -> RunShape:
        """Queue a run now, for the server's worker (or any `audience worker`) to send; poll
        the run at `Location` (`GET /runs/{run_id}`) until it has succeeded or failed."""
        with serving.use(user) as ws:
            queued = ws.activations.queue_now(kind, name)
        return serving.accepted(queued, response)

    if not verbs:
        return

    @router.post(f"/{kinds}/{{name:path}}/{{verb}}", name=f"{kind}_schedule_change")
    def change_schedule(
        name: str,
        verb: Literal["schedule", "pause", "resume", "cancel"],
        serving: ServedDep,
        user: Admin,
    ) -> StatusRow:
        """Put the activation on its schedule, pause it, resume it or cancel it (409 when its
        state does not allow that); answers with its new status."""
        with serving.use(user) as ws:
            changed: ActivationStatus = getattr(ws.activations, verb)(kind, name)
        return changed.shape()


@router.post("/journeys/{name:path}/activate")
def activate_journey(name: str, serving: ServedDep, user: Admin) -> StatusRow:
    """Start the journey on its schedule: a worker admits and moves customers at each run."""
    with serving.use(user) as ws:
        return ws.activations.schedule("journey", name).shape()


@router.post("/journeys/{name:path}/end")
def end_journey(
    name: str,
    serving: ServedDep,
    user: Admin,
    release: Annotated[
        bool, Query(description="Let everyone inside go now, not at the end of their paths.")
    ] = False,
) -> StatusRow:
    """End the journey: no one is admitted any more (409 when it is not active)."""
    with serving.use(user) as ws:
        return ws.activations.end(name, release=release).shape()


@router.post("/campaigns/{name:path}/test")
def test_send(
    name: str,
    serving: ServedDep,
    user: Editor,
    records: Annotated[int, Query(ge=1, le=1000, description="Rows per file.")] = 10,
) -> RunShape:
    """Send a sample of `records` rows per file, named TEST_…, without touching the ledger;
    answered when sent (a sample is small), with the test run."""
    with serving.use(user) as ws:
        return ws.campaign_run(name, test_records=records).shape()


_routes_of("campaigns", "campaign", verbs=True)
_routes_of("orchestrations", "orchestration", verbs=True)
_routes_of("journeys", "journey", verbs=False)


@router.get("/campaigns/{name:path}/results", response_model=CampaignResults)
def results(
    name: str,
    serving: ServedDep,
    user: Viewer,
    window: Annotated[
        str, Query(description="How long each customer is measured: 30d, 4w.")
    ] = "30d",
    as_of: Annotated[datetime | None, Query(description="Measure as things stood then.")] = None,
) -> CampaignResults:
    """Treatment against control, with intervals (`campaign results --json`)."""
    with fields_of("query", "window"):
        span = parse_window(window, field="window")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)  # a time without an offset is UTC, as in the CLI
    with serving.use(user) as ws:
        return ws.results.campaign(name, window=span, as_of=as_of)


@router.get("/orchestrations/{name:path}/preview")
def orchestration_preview(
    name: str,
    serving: ServedDep,
    user: Viewer,
    rows: Annotated[int, Query(ge=1, le=1000, description="How many rows.")] = 10,
) -> OrchestrationPreviewShape:
    """The first rows the orchestration's next run would send, and how many in all
    (`orchestration preview --json`)."""
    with serving.use(user) as ws:
        return ws.orchestration_preview(name, rows).shape()


@router.get("/journeys/{name:path}/counts")
def journey_counts(name: str, serving: ServedDep, user: Viewer) -> JourneyCounts:
    """Customers at each node and path of a journey, its exits and goals (`journey status
    --json`)."""
    with serving.use(user) as ws:
        return ws.journey_counts(name)


@router.get("/journeys/{name:path}/path")
def journey_path(
    name: str,
    serving: ServedDep,
    user: Viewer,
    customer: Annotated[str, Query(min_length=1, description="The customer's id.")],
) -> list[Step]:
    """One customer's travel log in a journey, oldest first (`journey path NAME CUSTOMER
    --json`): empty for a customer who has not entered it; 404 for an unknown journey or
    customer. The customer is a query parameter, as a journey's name may hold a `/`."""
    with serving.use(user) as ws:
        return ws.journey_path(name, customer)


@router.get("/destinations/{name:path}/test")
def destination_test(name: str, serving: ServedDep, user: Admin) -> DestinationCheck:
    """Connect, sign in and check that files can be written there; nothing is sent
    (`destination test --json`)."""
    with serving.use(user) as ws:
        return DestinationCheck(destination=name, ok=True, address=ws.destination_test(name))
