"""Campaigns: plan (counts, nothing sent), test (a sample), run (send, record, remember).

A run compiles the campaign to one assignment query, snapshots its result in the engine, then
streams each file's rows from that snapshot to its destination, and finally writes the recipients
ledger — so files, ledger and counts all describe the same customers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlglot import exp

from audience.activation import ledger
from audience.activation.files import check_file_names, send_files
from audience.activation.plan import (
    CampaignPlan,
    campaign_plan,
    sent_counts,
    test_counts,
    with_expansion,
)
from audience.activation.setting import CampaignSetting, Progress, Silent
from audience.compile.audience import PreviousRuns, assignment_query, destination_columns
from audience.compile.conditions import table
from audience.definitions.campaign import Campaign, SentAttribute
from audience.definitions.destination import Destination
from audience.engines.base import Engine
from audience.errors import AudienceError, DefinitionError, UnknownReference
from audience.store.runs import Run, RunLog


def sent_attributes(
    campaign: Campaign, destinations: Mapping[str, Destination]
) -> dict[str, list[SentAttribute]]:
    """Per destination: the campaign's attributes, or the destination's defaults."""
    result: dict[str, list[SentAttribute]] = {}
    for name in campaign.destinations:
        destination = destinations.get(name)
        if destination is None:
            raise UnknownReference(
                f"destination {name!r} does not exist", field=_destination_field(campaign, name)
            )
        chosen = campaign.attributes.get(name)
        if chosen is None:
            chosen = [
                SentAttribute.model_validate(
                    a if isinstance(a, str) else a.model_dump(by_alias=True, exclude_none=True)
                )
                for a in destination.default_attributes
            ]
        if not chosen:
            raise DefinitionError(f"no attributes to send to {name!r}", field=f"attributes.{name}")
        result[name] = list(chosen)
    unknown = sorted(set(campaign.attributes) - set(campaign.destinations))
    if unknown:
        raise UnknownReference(
            f"attributes given for {', '.join(map(repr, unknown))}, which no treatment sends to",
            field="attributes",
        )
    return result


def _destination_field(campaign: Campaign, name: str) -> str:
    for s, sub in enumerate(campaign.sub_audiences):
        for t, treatment in enumerate(sub.treatments):
            if name in treatment.destinations:
                return f"sub_audiences.{s}.treatments.{t}.destinations"
    for t, treatment in enumerate(campaign.treatments):
        if name in treatment.destinations:
            return f"treatments.{t}.destinations"
    return "destinations"


def check_campaign(campaign: Campaign, setting: CampaignSetting, dialect: str) -> None:
    """Compile everything a run would compile, so a bad campaign is refused when applied."""
    columns = destination_columns(
        campaign, sent_attributes(campaign, setting.destinations), setting.ctx
    )
    check_file_names(campaign, columns, setting.destinations, setting.ctx.now)
    assignment_query(
        campaign,
        setting.ctx,
        dialect=dialect,
        destinations=columns,
        previous=ledger.previous_runs([]),
    )


def plan_campaign(campaign: Campaign, setting: CampaignSetting) -> CampaignPlan:
    """Counts per sub-audience and group for a run now, without sending anything."""
    engine, ctx = setting.engine, setting.ctx
    columns = destination_columns(campaign, sent_attributes(campaign, setting.destinations), ctx)
    ledger.ensure_tables(engine)
    previous = _previous(campaign, setting.runs, engine)
    query = assignment_query(
        campaign, ctx, dialect=engine.dialect, destinations=columns, previous=previous
    )
    return campaign_plan(
        campaign,
        setting.engine,
        setting.ctx,
        exp.alias_(query.subquery(), "r"),
        columns,
        previous_exists=bool(previous.successes),
    )


def run_campaign(
    campaign: Campaign,
    version: int,
    setting: CampaignSetting,
    *,
    now: datetime,
    progress: Progress | None = None,
    test_records: int | None = None,
) -> Run:
    """Send the campaign (or, with `test_records`, a sample of it) and record the run."""
    engine, ctx, runs = setting.engine, setting.ctx, setting.runs
    progress = progress or Silent()
    is_test = test_records is not None
    run = runs.begin(
        kind="campaign",
        name=campaign.name,
        version=version,
        scheduled_for=now,
        now=setting.clock(),
        is_test=is_test,
    )
    run_table = f"audience_run_{run.id}"
    counts: dict[str, Any] = {}  # what a failed run records: the plan, once known
    try:
        runs.clear_deliveries(run.id)
        columns = destination_columns(
            campaign, sent_attributes(campaign, setting.destinations), ctx
        )
        ledger.ensure_tables(engine)
        ledger.forget_run(engine, run.id)
        previous = _previous(campaign, runs, engine, exclude=run.id)
        progress.step("Assigning customers to groups")
        ledger.materialise(
            engine,
            run_table,
            assignment_query(
                campaign, ctx, dialect=engine.dialect, destinations=columns, previous=previous
            ),
        )
        plan = campaign_plan(
            campaign,
            engine,
            ctx,
            table(run_table),
            columns,
            previous_exists=bool(previous.successes),
        )
        counts = plan.to_json() if test_records is None else test_counts([], test_records)
        sent = sent_counts(plan, campaign, engine, run_table, columns) if not is_test else {}
        delivered = []
        for file in send_files(
            campaign, setting, columns, run_table, run.id, now, progress, test_records, plan
        ):
            runs.add_delivery(run.id, file, setting.clock())
            delivered.append(file)
        if test_records is not None:
            counts = test_counts(delivered, test_records)
        else:
            counts = with_expansion(sent, delivered)
            ledger.record_recipients(
                engine,
                run_table=run_table,
                campaign=campaign,
                run_id=run.id,
                delivered_at=setting.clock(),
                destinations=columns,
            )
            if _remembers_members(campaign):
                ledger.record_members(engine, run_table=run_table, campaign=campaign, run_id=run.id)
        finished = runs.finish(run.id, status="succeeded", now=setting.clock(), counts=counts)
    except AudienceError as exc:
        return runs.finish(
            run.id, status="failed", now=setting.clock(), counts=counts, error=str(exc)
        )
    except BaseException as exc:  # a bug or an interrupt: never leave the run "running"
        runs.finish(run.id, status="failed", now=setting.clock(), counts=counts, error=repr(exc))
        raise
    finally:
        # The snapshot is temporary and goes with the connection anyway: a failure to drop it
        # must never hide how the run ended.
        with contextlib.suppress(AudienceError):
            ledger.drop(engine, run_table)
    if not is_test and _remembers_members(campaign):
        # Keep the audience of the newest run by schedule (a run may be sent for an earlier
        # time); a failure here only leaves an old snapshot behind: the run stands.
        with contextlib.suppress(AudienceError):
            newest = runs.successes("campaign", campaign.name)[-1]
            ledger.forget_older_members(engine, campaign=campaign, keep_run_id=newest)
    return finished


def _remembers_members(campaign: Campaign) -> bool:
    """Only recurring campaigns that send the newly qualified need the audience of each run."""
    return campaign.is_recurring and campaign.newly_qualified == "since_last_run"


def _previous(
    campaign: Campaign, runs: RunLog, engine: Engine, exclude: str | None = None
) -> PreviousRuns:
    """Earlier successful runs, and how to tell who is new against them."""
    if not campaign.is_recurring:
        return ledger.previous_runs([])
    successes = [r for r in runs.successes("campaign", campaign.name) if r != exclude]
    if campaign.newly_qualified == "never_sent" or (
        successes and not ledger.remembers(engine, campaign, successes[-1])
    ):
        # Without the last run's audience (the campaign was sent once before it recurred),
        # whoever was sent already is the best measure of who is not new.
        return ledger.previous_runs(successes, "never_sent")
    return ledger.previous_runs(successes)
