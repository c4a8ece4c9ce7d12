"""A campaign's plan started by one request and answered by polling (for plans over millions of
profiles, which take seconds): `POST /campaigns/{name}/plan`, then `GET /plans/{id}`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from audience.activation.plan import CampaignPlan
from audience.server.app import Editor, ServedDep
from audience.server.jobs import PlanJob

router = APIRouter(tags=["activations"])


@router.post("/campaigns/{name:path}/plan", status_code=202)
def start_plan(name: str, response: Response, serving: ServedDep, user: Editor) -> PlanJob:
    """Start working out the campaign's plan (nothing is sent); poll the job at `Location`
    until it has succeeded (with the plan `GET /campaigns/{name}/plan` answers) or failed. An
    unknown campaign is a 404 at once."""
    with serving.use(user) as ws:
        ws.campaign(name)  # a campaign that is not there is refused now, not by the job

    def work() -> CampaignPlan:
        with serving.use(user) as ws:
            return ws.campaign_plan(name)

    job = serving.plans.start(name, work)
    response.headers["Location"] = f"/plans/{job.job_id}"
    return job


@router.get("/plans/{job_id}")
def plan_job(job_id: str, serving: ServedDep, user: Editor) -> PlanJob:
    """A plan started with `POST /campaigns/{name}/plan`: running, or ended with the plan or
    the error."""
    del user
    return serving.plans.get(job_id)
