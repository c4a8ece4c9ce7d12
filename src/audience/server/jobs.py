"""Long requests that are not runs: started by one request, answered by polling.

A campaign's plan over ten million profiles takes seconds; an HTTP client (or the web UI) should
not hold a request open that long. `POST /campaigns/{name}/plan` starts the plan as a job in the
server process and answers 202 with it; `GET /plans/{id}` answers with the job until it has
ended, then with its plan or its error. Jobs live in the server's memory (they are answers, not
state: a restarted server has none) and the newest `KEEP` are kept.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Literal

from audience.activation.plan import CampaignPlan
from audience.errors import AudienceError, NotFound, StateError
from audience.server.errors import status_of
from audience.shapes import Moment, Shape

KEEP = 200
"""How many jobs a server remembers (the oldest ended ones are forgotten first)."""
OUTSTANDING = 8
"""How many plans may wait or be worked out at once; more is a 409 (they take turns on the
workspace, so a flood of them would hold every other request up)."""


class PlanJob(Shape):
    """A campaign's plan being worked out: `running`, then `succeeded` with the plan or
    `failed` with the error (as the synchronous route would have answered it)."""

    job_id: str
    campaign: str
    status: Literal["queued", "running", "succeeded", "failed"]
    started_at: Moment
    ended_at: Moment | None = None
    plan: CampaignPlan | None = None
    error: str | None = None
    error_status: int | None = None
    """The HTTP status the error would have had as an answer (404, 409, 422, 502…)."""


class PlanJobs:
    """The plans this server is working out or has worked out, on a thread of their own."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._jobs: OrderedDict[str, PlanJob] = OrderedDict()
        self._lock = threading.Lock()
        # One thread: requests that use the workspace take turns anyway.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audience-plan")

    def start(self, campaign: str, work: Callable[[], CampaignPlan]) -> PlanJob:
        """Start working out `campaign`'s plan with `work`; the job as it starts."""
        job = PlanJob(
            job_id=uuid.uuid4().hex, campaign=campaign, status="queued", started_at=self._clock()
        )
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.status in ("queued", "running"))
            if waiting >= OUTSTANDING:
                raise StateError(
                    f"{waiting} plans are being worked out already; ask again when one has ended"
                )
            self._jobs[job.job_id] = job
            self._forget_oldest()
        self._pool.submit(self._work, job, work)
        return job

    def get(self, job_id: str) -> PlanJob:
        """A job by id; NotFound for one this server never started (or has forgotten)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"plan {job_id!r} does not exist (or this server has forgotten it)")
        return job

    def close(self) -> None:
        """Stop taking jobs and wait for the one being worked out (it uses the workspace, which
        is closed next)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _work(self, job: PlanJob, work: Callable[[], CampaignPlan]) -> None:
        with self._lock:
            self._jobs[job.job_id] = job = job.model_copy(update={"status": "running"})
        try:
            ended = job.model_copy(update={"status": "succeeded", "plan": work()})
        except AudienceError as error:
            failed = {"status": "failed", "error": " ".join(str(error).split())}
            ended = job.model_copy(update=failed | {"error_status": status_of(error)})
        except Exception:  # a bug: the job says so rather than running forever
            failed = {"status": "failed", "error": "internal error (see the server's log)"}
            ended = job.model_copy(update=failed | {"error_status": 500})
            logging.getLogger(__name__).exception("plan of %r failed", job.campaign)
        ended = ended.model_copy(update={"ended_at": self._clock()})
        with self._lock:
            self._jobs[job.job_id] = ended

    def _forget_oldest(self) -> None:
        while len(self._jobs) > KEEP:
            ended = (i for i, j in self._jobs.items() if j.status not in ("queued", "running"))
            oldest = next(ended, None)
            if oldest is None:
                return
            del self._jobs[oldest]
