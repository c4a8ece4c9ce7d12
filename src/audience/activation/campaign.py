"""Campaigns: plan (counts, nothing sent), test (a sample), run (send, record, remember).

A run compiles the campaign to one assignment query, snapshots its result in the engine, then
streams each file's rows from that snapshot to its destination, and finally writes the recipients
ledger — so files, ledger and counts all describe the same customers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
from audience.activation.recording import RunRecording
from audience.activation.setting import CampaignSetting, Progress, Silent
from audience.compile.campaign import PreviousRuns, assignment_query, destination_columns
from audience.compile.sql import table
from audience.definitions.campaign import Campaign, SentAttribute
from audience.definitions.destination import Destination
from audience.engines.base import Engine
from audience.errors import AudienceError, DefinitionError, UnknownReference
from audience.store.runs import RunLog


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
            chosen = default_attributes(destination)
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


def default_attributes(destination: Destination) -> list[SentAttribute]:
    """What a destination receives unless an activation says otherwise."""
    return [
        SentAttribute.model_validate(
            a if isinstance(a, str) else a.model_dump(by_alias=True, exclude_none=True)
        )
        for a in destination.default_attributes
    ]


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
        campaign.destinations, sent_attributes(campaign, setting.destinations), setting.ctx
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
    columns = destination_columns(
        campaign.destinations, sent_attributes(campaign, setting.destinations), ctx
    )
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
    setting: CampaignSetting,
    recording: RunRecording,
    *,
    progress: Progress | None = None,
    test_records: int | None = None,
) -> dict[str, Any]:
    """Send the campaign (or, with `test_records`, a sample of it) for the run being recorded,
    as of the run's due time; return its counts. An AudienceError means the run failed; the
    recording keeps what was known by then."""
    engine, ctx, runs = setting.engine, setting.ctx, setting.runs
    run = recording.run
    progress = progress or Silent()
    run_table = f"audience_run_{run.id}"
    try:
        columns = destination_columns(
            campaign.destinations, sent_attributes(campaign, setting.destinations), ctx
        )
        ledger.ensure_tables(engine)
        # A test sends a sample of the whole audience: after a recurring campaign's first run,
        # "newly qualified" would often leave nobody to sample.
        previous = (
            ledger.previous_runs([])
            if test_records is not None
            else _previous(campaign, runs, engine, exclude=run.id)
        )
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
        if test_records is not None:
            recording.counts = test_counts([], test_records)
            delivered = list(
                send_files(
                    campaign, setting, columns, run_table, recording, progress, test_records, plan
                )
            )
            return test_counts(delivered, test_records)
        recording.counts = plan.to_json()
        sent = sent_counts(plan, campaign, engine, run_table, columns)
        delivered = list(
            send_files(campaign, setting, columns, run_table, recording, progress, None, plan)
        )
        progress.step("Recording recipients")
        with _kept_if_still_held(engine, recording):
            # What an earlier attempt of this run wrote goes with what this one writes: an
            # attempt taken over can remove nothing the attempt that took over committed.
            ledger.forget_run(engine, run.id)
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
        if _remembers_members(campaign):
            _forget_older_audiences(campaign, runs, engine, run.id)
        return with_expansion(sent, delivered)
    finally:
        # The snapshot is temporary and goes with the connection anyway: a failure to drop it
        # must never hide how the run ended.
        with contextlib.suppress(AudienceError):
            ledger.drop(engine, run_table)


@contextmanager
def _kept_if_still_held(engine: Engine, recording: RunRecording) -> Iterator[None]:
    """The ledger's writes, kept only if the run is still this attempt's: a run taken over
    meanwhile is recorded by the attempt that took it. They commit together once the run log
    says so — its answer to the last file's record, written meanwhile, usually. Where a
    transaction copies the tables it writes (Spark), the run log is asked before instead."""
    if not engine.cheap_transactions:
        recording.confirm()
        yield
        return
    with engine.transaction():
        yield
        recording.confirm()


def _forget_older_audiences(campaign: Campaign, runs: RunLog, engine: Engine, run_id: str) -> None:
    """Keep the audiences "newly qualified" may still need: this run's, and the newest other
    success's (a run may be sent for an earlier time than one already sent). A failure here only
    leaves an old snapshot behind: the run stands."""
    keep = {run_id, *runs.successes("campaign", campaign.name)[-1:]}
    with contextlib.suppress(AudienceError):
        ledger.forget_older_members(engine, campaign=campaign, keep_run_ids=keep)


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
