"""An activation's life (SPEC §7): scheduled, paused, resumed, canceled; its status as the
Activations page shows it; and its runs retried or canceled by hand.

What the user asked for is recorded (`audience_activations`); what the status page says is
derived from that, the schedule and the run log:

| status    | when |
|-----------|------|
| draft     | never scheduled and never sent |
| scheduled | on its schedule, waiting for the next due time |
| running   | a run is running now |
| delivered | a one-time (or ended) schedule's last run succeeded ("completed": orchestrations) |
| error     | its last run failed, and no retry is queued |
| paused    | paused by the user; resumes where it left off, without catching up |
| canceled  | canceled by the user; queued runs are canceled with it |
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

# What retrying, canceling and ending use (the runners, the delivery code) is imported in those
# verbs: the status page reads the metadata store only, and starts without them.
from audience.activation.runner import ACTIVATION_KINDS, execute, lease_of, this_process
from audience.definitions.campaign import Campaign
from audience.definitions.journey import Journey
from audience.definitions.kinds import Activation
from audience.definitions.orchestration import Orchestration
from audience.definitions.schedule import Schedule, check_schedule
from audience.errors import DefinitionError, NotFound, StateError
from audience.scheduling.describe import describe
from audience.scheduling.schedule import ScheduleHistory, next_run
from audience.shapes import Day, Moment, Shape
from audience.store.activations import RUNNING_STATES, ScheduledActivation
from audience.store.runs import DueRun, Run, RunShape

if TYPE_CHECKING:
    from audience.activation.setting import Progress
    from audience.workspace import Workspace


@dataclass(frozen=True)
class CanceledRun:
    """A run canceled by hand, and how many half-written leftovers of it were removed."""

    run: Run
    leftovers_removed: int

    def shape(self) -> CanceledRunShape:
        """What `runs cancel --json` prints and the API answers."""
        return CanceledRunShape(**dict(self.run.shape()), leftovers_removed=self.leftovers_removed)


class CanceledRunShape(RunShape):
    """A run canceled by hand, and how many half-written files of it were removed."""

    leftovers_removed: int


@dataclass(frozen=True)
class ActivationStatus:
    """One row of the Activations page."""

    kind: str
    name: str
    status: str
    schedule: str
    next_due: datetime | None
    last_run: Run | None
    launch_date: date | None

    def shape(self) -> StatusRow:
        """The row as `audience status --json` prints it and the API answers it."""
        last = self.last_run
        return StatusRow(
            kind=self.kind,
            name=self.name,
            status=self.status,
            schedule=self.schedule,
            next_due=self.next_due,
            launch_date=self.launch_date,
            last_run=None
            if last is None
            else LastRun(
                run_id=last.id,
                scheduled_for=last.scheduled_for,
                status=last.status,
                error=last.error,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape of `audience status --json`."""
        return self.shape().model_dump(mode="json")


class LastRun(Shape):
    """An activation's latest run, as its status row shows it."""

    run_id: str
    scheduled_for: Moment
    status: str
    error: str | None


class StatusRow(Shape):
    """One row of the Activations page."""

    kind: str
    name: str
    status: str
    """draft, scheduled, running, delivered, completed, error, paused, canceled, ending…"""
    schedule: str
    """The schedule in words."""
    next_due: Moment | None
    launch_date: Day | None
    last_run: LastRun | None


class Activations:
    """Scheduling, pausing, resuming and canceling activations; their status; runs by hand."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def schedule(self, kind: str, name: str) -> ActivationStatus:
        """Put an activation on its schedule, from now (to the second, as `--now` writes it)."""
        ws, now = self._ws, self._ws.clock().replace(microsecond=0)
        schedule = self._checked_schedule(kind, name)
        current = ws.store.activations.get(kind, name)
        if (
            current is not None
            and current.state == "scheduled"
            # a spent schedule whose runs were all canceled may be put on again
            and self.status_of(kind, name).status != "canceled"
        ):
            raise StateError(f"{kind} {name!r} is scheduled already")
        if current is not None and current.state == "paused":
            raise StateError(f"{kind} {name!r} is paused; resume it instead")
        check_schedule(schedule, now)
        ws.store.activations.set_state(
            kind, name, state="scheduled", now=now, since=now, keep_last_due=False
        )
        ws.audit("schedule", f"{kind}/{name}")
        return self.status_of(kind, name)

    def pause(self, kind: str, name: str) -> ActivationStatus:
        """Stop starting new runs (a run under way finishes)."""
        self._expect(kind, name, "scheduled", "pause")
        self._ws.store.activations.set_state(kind, name, state="paused", now=self._ws.clock())
        self._ws.audit("pause", f"{kind}/{name}")
        return self.status_of(kind, name)

    def resume(self, kind: str, name: str) -> ActivationStatus:
        """Start runs again from now: due times missed while paused are not caught up, nor
        are those its schedule had queued, not yet run, when it was paused (a one-time
        schedule's run still goes: it has not been sent)."""
        ws = self._ws
        self._checked_schedule(kind, name)
        paused = self._expect(kind, name, "paused", "resume")
        now = ws.clock()
        repeats = self._repeats(kind, name)
        last_due = max(paused.last_due or now, now) if repeats else None
        if repeats:
            ws.store.runs.cancel_queued(kind, name, now=now, scheduled_before=now)
        ws.store.activations.set_state(kind, name, state="scheduled", now=now, last_due=last_due)
        ws.audit("resume", f"{kind}/{name}")
        return self.status_of(kind, name)

    def cancel(self, kind: str, name: str) -> ActivationStatus:
        """Take the activation off its schedule for good (it can be scheduled again later);
        its queued runs are canceled."""
        ws, now = self._ws, self._ws.clock()
        self.definition(kind, name)  # NotFound for one that does not exist
        current = ws.store.activations.get(kind, name)
        if current is None or current.state == "canceled":
            raise StateError(f"{kind} {name!r} is not scheduled; there is nothing to cancel")
        shown = self.status_of(kind, name).status
        if shown in FINISHED:
            raise StateError(f"{kind} {name!r} is {shown}; its schedule has no runs left to cancel")
        ws.store.activations.set_state(kind, name, state="canceled", now=now)
        ws.store.runs.cancel_queued(kind, name, now=now)
        ws.audit("cancel", f"{kind}/{name}")
        return self.status_of(kind, name)

    def end(self, name: str, *, release: bool) -> ActivationStatus:
        """End a journey: no one is admitted any more. Those inside are `release`d at once
        (their travel log says so), or else move on at its runs until they reach the end of
        their paths; then it ends for good."""
        ws, now = self._ws, self._ws.clock()
        journey = self.definition("journey", name)[0]
        assert isinstance(journey, Journey)
        current = ws.store.activations.get("journey", name)
        if current is None or current.state not in {"scheduled", "paused", "ending"}:
            raise StateError(f"cannot end journey {name!r}: it is not active")
        if not release and current.state == "ending":
            raise StateError(f"journey {name!r} is ending already; --release lets everyone go now")
        if release:
            from audience.activation.journey import release_everyone

            release_everyone(journey, ws.engine, now)
            ws.store.activations.set_state("journey", name, state="canceled", now=now)
            ws.store.runs.cancel_queued("journey", name, now=now)
        else:
            ws.store.activations.set_state("journey", name, state="ending", now=now)
        ws.audit("end", f"journey/{name}", {"release": release})
        return self.status_of("journey", name)

    def queue_now(self, kind: str, name: str) -> Run:
        """Queue a run of the activation due now (to the second, so that `--now` can name
        it), for a worker to send; the run as queued. A StateError if one is queued or running
        at that second already; when that one has ended, the run is due a second later."""
        ws = self._ws
        _, version = self.definition(kind, name)
        moment = ws.clock().replace(microsecond=0)
        due = DueRun(kind, name, version, moment, trigger="manual")
        run = ws.store.runs.queue(due, later_if_ended=True)
        ws.audit("run", f"{kind}/{name}", {"run_id": run.id})
        return run

    def queue_retry(self, run_id: str) -> Run:
        """Queue a failed or canceled run again, for a worker to run as its next attempt."""
        ws = self._ws
        run = ws.store.runs.requeue(ws.store.runs.find(run_id).id, now=ws.clock())
        ws.audit("retry", f"{run.activation_kind}/{run.activation_name}", {"run_id": run.id})
        return run

    def retry(self, run_id: str, *, progress: Progress | None = None) -> Run:
        """Run a failed or canceled run again now, as its next attempt."""
        ws = self._ws
        run = ws.store.runs.restart(
            ws.store.runs.find(run_id).id, worker=this_process(), now=ws.clock(), lease=lease_of(ws)
        )
        ws.audit("retry", f"{run.activation_kind}/{run.activation_name}", {"run_id": run.id})
        return execute(ws, run, worker=this_process(), progress=progress)

    def cancel_run(self, run_id: str) -> CanceledRun:
        """Mark a queued or failed run — or a running one whose worker's lease has expired —
        canceled; what a dead worker left half-written at the destinations is removed."""
        ws = self._ws
        found = ws.store.runs.find(run_id)
        run = ws.store.runs.cancel(found.id, now=ws.clock(), lease=lease_of(ws))
        if found.status != "running":
            return CanceledRun(run, 0)  # an attempt that ended cleaned up after itself
        definition = self.definition(run.activation_kind, run.activation_name)[0]
        if isinstance(definition, Orchestration):
            from audience.activation.orchestration import discard_orchestration_leftovers

            leftovers = discard_orchestration_leftovers(
                definition, ws.destinations(), ws.open_client, run
            )
        elif isinstance(definition, Journey):
            leftovers = 0  # a journey's files are found by the retry, which recognises them
        else:
            from audience.activation.files import discard_leftovers

            leftovers = discard_leftovers(definition, ws.destinations(), ws.open_client, run)
        return CanceledRun(run, leftovers)

    def status(self, kind: str | None = None) -> list[ActivationStatus]:
        """Every activation (of one kind), by kind and name."""
        if kind is not None and kind not in ACTIVATION_KINDS:
            raise NotFound(f"no activations of kind {kind!r}; kinds: {', '.join(ACTIVATION_KINDS)}")
        names = [
            (stored.kind, stored.name)
            for stored in self._ws.store.definitions()
            if stored.kind in ACTIVATION_KINDS and (kind is None or stored.kind == kind)
        ]
        return [self.status_of(k, n) for k, n in names]

    def status_of(self, kind: str, name: str) -> ActivationStatus:
        """One activation's row of the Activations page."""
        ws = self._ws
        definition = self.definition(kind, name)[0]
        recorded = ws.store.activations.get(kind, name)
        last = ws.store.runs.latest(kind, name)
        schedule = definition.schedule
        history = (
            self.history(recorded) if recorded is not None else ScheduleHistory(since=ws.clock())
        )
        now = ws.clock()
        if (
            last is not None
            and last.scheduled_for >= history.since
            and (history.last_due is None or last.scheduled_for > history.last_due)
        ):
            # a run made by hand as of a later moment (`--now`): the next one comes after it
            history = replace(history, last_due=last.scheduled_for)
            now = max(now, last.scheduled_for)
        # A canceled run is one that did not happen: the status follows the last that did.
        counted = (
            last
            if last is None or last.status != "canceled"
            else ws.store.runs.latest(kind, name, happened=True)
        )
        upcoming = (
            next_run(schedule, history=history, now=now)
            if recorded is not None and recorded.state in RUNNING_STATES
            else None
        )
        return ActivationStatus(
            kind=kind,
            name=name,
            status=_status(
                kind,
                recorded,
                counted,
                upcoming,
                ws.store.runs.active(kind, name),
                follows=schedule is not None and schedule.after is not None,
                # runs since it was put on its schedule, all canceled
                canceled=counted is None
                and last is not None
                and last.scheduled_for >= history.since,
            ),
            schedule=describe(schedule, history),
            next_due=upcoming,
            last_run=last,
            launch_date=definition.launch_date,
        )

    def history(self, recorded: ScheduledActivation, runs: int | None = None) -> ScheduleHistory:
        """What the run log says about an activation's schedule since it took effect (`runs`:
        its successes since then, when the caller counted them already)."""
        if runs is None:
            runs = len(
                self._ws.store.runs.successes(recorded.kind, recorded.name, since=recorded.since)
            )
        return ScheduleHistory(
            since=recorded.since,
            runs=runs,
            last_due=recorded.last_due,
            upstream=self._upstream(recorded),
        )

    def _upstream(self, recorded: ScheduledActivation) -> datetime | None:
        """For an orchestration that runs after another activation: the due time of that
        one's newest successful run since this schedule took effect."""
        if recorded.kind != "orchestration":
            return None  # only orchestrations run after another activation
        runs = self._ws.store.runs
        stored = self._ws.store.definition(recorded.kind, recorded.name)
        schedule = _activation(recorded.kind, stored.body).schedule if stored else None
        if schedule is None or schedule.after is None:
            return None
        after = schedule.after
        successes = runs.successes(after.kind, after.name, since=recorded.since)
        return runs.get(successes[-1]).scheduled_for if successes else None

    def definition(
        self, kind: str, name: str, version: int | None = None
    ) -> tuple[Activation, int]:
        """An activation's current definition and version (or the version asked for), by
        kind."""
        if kind not in ACTIVATION_KINDS:
            raise NotFound(f"no activations of kind {kind!r}; kinds: {', '.join(ACTIVATION_KINDS)}")
        stored = self._ws.store.definition(kind, name, version)
        if stored is None:
            raise NotFound(f"{kind} {name!r} does not exist; apply it first")
        return _activation(kind, stored.body), stored.version

    def schedules(
        self, among: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Schedule | None, int]]:
        """The schedule and version of the current definition of each activation `among` those
        (kind, name) that exist, in one read. Only the schedule is read: a worker looks at every
        scheduled activation's at every tick, and the rest of a stored definition was checked
        when it was applied."""
        return {
            (stored.kind, stored.name): (_schedule(stored.kind, stored.body), stored.version)
            for stored in self._ws.store.definitions()
            if (stored.kind, stored.name) in among
        }

    def _repeats(self, kind: str, name: str) -> bool:
        schedule = self.definition(kind, name)[0].schedule
        return schedule is not None and schedule.repeating is not None

    def _checked_schedule(self, kind: str, name: str) -> Schedule:
        """The activation's schedule, once its definition checks out against what it uses
        (segments active, destinations there, columns real)."""
        definition = self.definition(kind, name)[0]
        after = definition.schedule.after if definition.schedule is not None else None
        if after is not None and self._ws.store.definition(after.kind, after.name) is None:
            raise StateError(
                f"cannot schedule {kind} {name!r}: it runs after {after.kind} {after.name!r}, "
                "which does not exist"
            )
        if definition.schedule is None:
            raise StateError(
                f"{kind} {name!r} has no schedule; run it with `audience {kind} run`, or "
                "give it a schedule and apply it"
            )
        try:
            self._ws.check_activation(definition)
        except DefinitionError as exc:
            raise StateError(f"cannot schedule {kind} {name!r}: {exc}") from None
        return definition.schedule

    def _expect(self, kind: str, name: str, state: str, verb: str) -> ScheduledActivation:
        """The activation's recorded state, when it is `state` and its schedule has runs to
        come; else StateError naming the status the user sees (delivered, not scheduled)."""
        self.definition(kind, name)  # NotFound for one that does not exist
        current = self._ws.store.activations.get(kind, name)
        shown = self.status_of(kind, name).status
        if current is None or current.state != state or shown in FINISHED:
            now = "a draft" if shown == "draft" else shown
            wanted = "active" if kind == "journey" and state == "scheduled" else state
            raise StateError(f"cannot {verb} {kind} {name!r}: it is {now}, not {wanted}")
        return current


def _status(
    kind: str,
    recorded: ScheduledActivation | None,
    last: Run | None,
    upcoming: datetime | None,
    active: list[Run],
    *,
    follows: bool = False,
    canceled: bool = False,
) -> str:
    """`follows`: the schedule runs after another activation's runs, with no time of its own
    (no `upcoming`), for as long as it is on. `canceled`: it has runs, all canceled (none
    happened)."""
    status = _campaign_status(
        kind, recorded, last, upcoming, active, follows=follows, canceled=canceled
    )
    if kind == "journey":
        # SPEC §5: a journey is draft, active, paused or ended; ticked by hand, still a draft.
        if recorded is None and status not in {"running", "error"}:
            return "draft"
        return JOURNEY_STATUSES.get(status, status)
    return status


FINISHED = frozenset({"delivered", "completed", "ended"})
"""Statuses of an activation whose schedule has no runs left (a one-time campaign that was
delivered, a recurring one past its end): nothing to pause, resume or cancel."""

JOURNEY_STATUSES = {
    "scheduled": "active",
    "running": "active",
    "ending": "ended",
    "canceled": "ended",
    "delivered": "ended",
}


def _campaign_status(
    kind: str,
    recorded: ScheduledActivation | None,
    last: Run | None,
    upcoming: datetime | None,
    active: list[Run],
    *,
    follows: bool,
    canceled: bool,
) -> str:
    # SPEC §7: a campaign ends "delivered", an orchestration "completed".
    done = "completed" if kind == "orchestration" else "delivered"
    if recorded is not None and recorded.state in {"paused", "canceled", "ending"}:
        return recorded.state
    if any(run.status == "running" for run in active):
        return "running"
    if last is not None and last.status == "failed" and not active:
        ended = last.ended_at or last.scheduled_for
        if recorded is None or recorded.state != "scheduled" or recorded.since < ended:
            return "error"  # until it is put on its schedule again (the user dealt with it)
    if recorded is None or recorded.state != "scheduled":
        return "draft" if last is None else {"succeeded": done}.get(last.status, "draft")
    no_runs_left = upcoming is None and not follows
    if no_runs_left and last is not None and last.status == "succeeded" and not active:
        return done
    if no_runs_left and canceled and not active:
        return "canceled"  # its schedule's runs were all canceled: nothing is left to send
    return "scheduled"


_MODELS: dict[str, type[Activation]] = {
    "campaign": Campaign,
    "journey": Journey,
    "orchestration": Orchestration,
}
"""Each kind of activation's model."""


def _schedule(kind: str, body: dict[str, Any]) -> Schedule | None:
    """The schedule of a stored definition (the kind's default when it gives none; a schedule
    never changes once loaded, so the default is shared)."""
    given = body.get("schedule")
    if given is None:
        default: Schedule | None = _MODELS[kind].model_fields["schedule"].default
        return default
    return Schedule.model_validate(given)


def _activation(kind: str, body: dict[str, Any]) -> Activation:
    return _MODELS.get(kind, Campaign).model_validate(body)
