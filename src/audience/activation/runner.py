"""From a begun or claimed run to its outcome: the one path every kind of activation takes,
whether a command sends it now or a worker claimed it."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from audience.activation.recording import RetryPolicy, RunRecording
from audience.definitions.journey import Journey
from audience.definitions.orchestration import Orchestration
from audience.store.runs import LeaseTerms, NextClaim, Run

if TYPE_CHECKING:
    from audience.activation.setting import Progress
    from audience.workspace import Workspace

ACTIVATION_KINDS = ("campaign", "journey", "orchestration")
"""The kinds of activation a run can be of."""


def this_process() -> str:
    """Who holds a run's lease when this process runs it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_of(ws: Workspace) -> LeaseTerms:
    """How long a run is its runner's without a heartbeat, on the workspace's lease clock."""
    return LeaseTerms(timedelta(seconds=ws.settings.worker.lease_seconds), ws.lease_clock)


def retry_policy(ws: Workspace) -> RetryPolicy:
    """The workspace's policy for transient failures."""
    worker = ws.settings.worker
    return RetryPolicy(
        max_attempts=worker.max_attempts,
        base=timedelta(seconds=worker.retry_base_seconds),
        cap=timedelta(seconds=worker.retry_cap_seconds),
    )


def execute(
    ws: Workspace,
    run: Run,
    *,
    worker: str,
    progress: Progress | None = None,
    test_records: int | None = None,
    retry: RetryPolicy | None = None,
    then_claim: NextClaim | None = None,
) -> Run:
    """Do the run's work as of its due time, with the activation's current definition, and
    record how it ended (see `RunRecording.record`); a worker's `then_claim` claims its next
    run with a successful run's end."""
    recording = RunRecording(
        ws.store.runs, run, ws.clock, worker, lease_of(ws), then_claim=then_claim
    )

    def work(recording: RunRecording) -> dict[str, Any]:
        kind, name = run.activation_kind, run.activation_name
        definition, version = ws.activations.definition(kind, name)
        if version != run.version and recording.recorded:
            # An earlier attempt published files with the run's version: the rest of the
            # run's files are made by it too, never by an edit applied since.
            definition, version = ws.activations.definition(kind, name, run.version)
        elif version != run.version:
            ws.store.runs.set_version(run.id, version)
        setting = ws.campaign_setting(now=run.scheduled_for)
        # Each kind's runner is imported when a run of that kind comes: an orchestration's
        # run does not load the campaign's files and plans, nor the journey's statistics.
        if isinstance(definition, Orchestration):
            from audience.activation.orchestration import run_orchestration

            return run_orchestration(definition, setting, recording, progress=progress)
        if isinstance(definition, Journey):
            from audience.activation.journey import run_journey

            recorded = ws.store.activations.get("journey", definition.name)
            ending = recorded is not None and recorded.state == "ending"
            counts = run_journey(
                definition, setting, recording, progress=progress, admit=not ending
            )
            if ending and not counts["in_journey"]:
                # The last one inside has reached the end: the journey ends for good.
                ws.store.activations.set_state(
                    "journey", definition.name, state="canceled", now=ws.clock()
                )
            return counts
        from audience.activation.campaign import run_campaign

        return run_campaign(
            definition, setting, recording, progress=progress, test_records=test_records
        )

    return recording.record(work, retry=retry)
