"""Campaigns: plan (counts, nothing sent), test (a sample), run (send, record, remember).

A run compiles the campaign to one assignment query, snapshots its result in the engine, then
streams each file's rows from that snapshot to its destination, and finally writes the recipients
ledger — so files, ledger and counts all describe the same customers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from audience.activation import ledger
from audience.compile.audience import (
    GROUP,
    SUB_AUDIENCE,
    DestinationColumns,
    PreviousRuns,
    assignment_query,
    audience_size_query,
    delivery_query,
    destination_columns,
    leftovers_query,
    plan_query,
    sends_to,
)
from audience.compile.conditions import CompileContext, count_if, table
from audience.definitions.campaign import CONTROL_GROUP, Campaign, SentAttribute
from audience.definitions.destination import Destination
from audience.definitions.templates import uses_variable
from audience.delivery.destinations.base import DestinationClient
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, open_destination
from audience.engines.base import Engine
from audience.errors import AudienceError, DefinitionError, UnknownReference
from audience.store.runs import DeliveredFile, Run, RunLog

TEST_PREFIX = "TEST"
"""Test sends are named `TEST_<campaign>…` so nobody mistakes them for the real thing."""


class Progress(Protocol):
    """How core code reports progress; the CLI draws it, the API exposes it."""

    def step(self, description: str, total: int | None = None) -> None:
        """A new step begins (with its number of rows, when known)."""

    def advance(self, rows: int) -> None:
        """Rows of the current step are done."""


class _Silent:
    def step(self, description: str, total: int | None = None) -> None:
        del description, total

    def advance(self, rows: int) -> None:
        del rows


@dataclass(frozen=True)
class GroupCount:
    """Customers of one treatment (or the control group) of one sub-audience."""

    name: str
    control: bool
    customers: int


@dataclass(frozen=True)
class SubAudienceCount:
    """Customers of one sub-audience and of each of its groups."""

    name: str
    customers: int
    groups: list[GroupCount]


@dataclass(frozen=True)
class CampaignPlan:
    """What a run would do now: who lands where, who is excluded, who each destination drops."""

    campaign: str
    audience: int
    excluded: int
    unmatched: int
    sub_audiences: list[SubAudienceCount]
    shrink: dict[str, int]
    newly_qualified_only: bool

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape of `campaign plan --json`."""
        return {
            "campaign": self.campaign,
            "audience": self.audience,
            "excluded": self.excluded,
            "unmatched": self.unmatched,
            "newly_qualified_only": self.newly_qualified_only,
            "sub_audiences": [
                {
                    "name": s.name,
                    "customers": s.customers,
                    "groups": [
                        {"name": g.name, "control": g.control, "customers": g.customers}
                        for g in s.groups
                    ],
                }
                for s in self.sub_audiences
            ],
            "shrink": self.shrink,
        }


@dataclass(frozen=True)
class CampaignSetting:
    """Everything a campaign needs from its workspace."""

    engine: Engine
    runs: RunLog
    ctx: CompileContext
    destinations: Mapping[str, Destination]
    open_client: Callable[[Destination], DestinationClient] = field(default=open_destination)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The wall clock, for when a run starts and ends (`now` is when it was due)."""


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
    _check_names_differ(campaign, columns, setting.destinations)
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
    return _plan(
        campaign,
        setting,
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
    progress = progress or _Silent()
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
        plan = _plan(
            campaign, setting, table(run_table), columns, previous_exists=bool(previous.successes)
        )
        counts = plan.to_json()
        sent = _counts(plan, campaign, engine, run_table, columns)
        delivered = []
        for file in _send(
            campaign, setting, columns, run_table, run.id, now, progress, test_records, plan
        ):
            runs.add_delivery(run.id, file, setting.clock())
            delivered.append(file)
        counts = sent
        if not is_test:
            counts = _with_expansion(counts, delivered)
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


def _plan(
    campaign: Campaign,
    setting: CampaignSetting,
    source: exp.Expr,
    columns: Sequence[DestinationColumns],
    *,
    previous_exists: bool,
) -> CampaignPlan:
    """The counts of a run, from its assignments (`source`: the snapshot, or the query)."""
    engine = setting.engine
    rows = engine.rows(plan_query(campaign, source, columns))
    leftovers = engine.rows(leftovers_query(campaign, setting.ctx))[0]
    audience = engine.rows(audience_size_query(source.copy()))[0]["audience"]
    found = {(r[SUB_AUDIENCE], r[GROUP]): r for r in rows}
    subs: list[SubAudienceCount] = []
    for sub in campaign.groups:
        names = [t.name for t in sub.treatments] + ([CONTROL_GROUP] if sub.control else [])
        groups = [
            GroupCount(
                name,
                name == CONTROL_GROUP,
                int(found.get((sub.name, name), {}).get("customers", 0)),
            )
            for name in names
        ]
        subs.append(SubAudienceCount(sub.name, sum(g.customers for g in groups), groups))
    shrink = {
        d.name: sum(int(r.get(f"shrink_{i}") or 0) for r in rows) for i, d in enumerate(columns)
    }
    return CampaignPlan(
        campaign=campaign.name,
        audience=int(audience or 0),
        excluded=int(leftovers["excluded"]),
        unmatched=int(leftovers["unmatched"]),
        sub_audiences=subs,
        shrink=shrink,
        newly_qualified_only=campaign.is_recurring and previous_exists,
    )


def _counts(
    plan: CampaignPlan,
    campaign: Campaign,
    engine: Engine,
    run_table: str,
    columns: Sequence[DestinationColumns],
) -> dict[str, Any]:
    """The plan's counts, plus customers sent (to any destination) and per destination."""

    sent_anywhere = exp.or_(*(sends_to(campaign, d) for d in columns))
    query = exp.select(
        count_if(sent_anywhere, "sent"),
        *(count_if(sends_to(campaign, d), f"to_{i}") for i, d in enumerate(columns)),
    ).from_(table(run_table))
    row = engine.rows(query)[0]
    return {
        **plan.to_json(),
        "sent": int(row["sent"] or 0),
        "control": sum(g.customers for s in plan.sub_audiences for g in s.groups if g.control),
        "customers_per_destination": {
            d.name: int(row[f"to_{i}"] or 0) for i, d in enumerate(columns)
        },
    }


def _with_expansion(counts: dict[str, Any], delivered: Sequence[DeliveredFile]) -> dict[str, Any]:
    """Rows beyond one per customer, per destination (several source rows per customer)."""
    rows: dict[str, int] = {}
    for file in delivered:
        if file.role == "data":
            rows[file.destination] = rows.get(file.destination, 0) + file.rows
    customers = counts["customers_per_destination"]
    return {**counts, "expansion": {d: rows.get(d, 0) - n for d, n in customers.items()}}


@dataclass(frozen=True)
class _File:
    destination: DestinationColumns
    sub_audience: str | None
    group: str | None
    rows: int


def _files(
    campaign: Campaign, columns: Sequence[DestinationColumns], plan: CampaignPlan
) -> list[_File]:
    counts = {(s.name, g.name): g.customers for s in plan.sub_audiences for g in s.groups}
    files: list[_File] = []
    for dest in columns:
        if campaign.files == "single":
            files.append(_File(dest, None, None, plan.audience))
            continue
        for sub in campaign.groups:
            for treatment in sub.treatments:
                if dest.name in treatment.destinations:
                    files.append(
                        _File(dest, sub.name, treatment.name, counts[(sub.name, treatment.name)])
                    )
    return files


def _check_names_differ(
    campaign: Campaign,
    columns: Sequence[DestinationColumns],
    destinations: Mapping[str, Destination],
) -> None:
    """Two files of one run must not share a name: same group name in two sub-audiences."""
    if campaign.files == "single":
        return
    seen: set[tuple[str, str]] = set()
    for dest in columns:
        template = destinations[dest.name].file.filename
        for sub in campaign.groups:
            for treatment in sub.treatments:
                key = (dest.name, treatment.name)
                if dest.name not in treatment.destinations:
                    continue
                if key in seen and not uses_variable(template, "sub_audience_name"):
                    raise DefinitionError(
                        f"two sub-audiences send a group named {treatment.name!r} to "
                        f"{dest.name!r}; add {{{{ sub_audience_name }}}} to its filename "
                        "template or rename a treatment",
                        field="sub_audiences",
                    )
                seen.add(key)


def _send(
    campaign: Campaign,
    setting: CampaignSetting,
    columns: Sequence[DestinationColumns],
    run_table: str,
    run_id: str,
    now: datetime,
    progress: Progress,
    test_records: int | None,
    plan: CampaignPlan,
) -> Iterator[DeliveredFile]:
    activation = f"{TEST_PREFIX}_{campaign.name}" if test_records is not None else campaign.name
    files = _files(campaign, columns, plan)
    _check_names_differ(campaign, columns, setting.destinations)
    clients: dict[str, DestinationClient] = {}
    for file in files:
        destination = setting.destinations[file.destination.name]
        client = clients.get(destination.name)
        if client is None:
            client = clients[destination.name] = setting.open_client(destination)
        query = delivery_query(
            run_table,
            campaign,
            file.destination,
            setting.ctx,
            sub_audience=file.sub_audience,
            group=file.group,
            with_group_columns=campaign.files == "single",
            limit=test_records,
        )
        label = file.group or "all treatments"
        total = min(file.rows, test_records) if test_records is not None else file.rows
        progress.step(f"{label} → {destination.name}", total)
        names = NameValues(
            activation_name=activation,
            now=now,
            group_name=file.group or "all",
            sub_audience_name=file.sub_audience or "",
        )
        reader = setting.engine.stream(query)
        batches = _reported(reader, progress)
        delivered = deliver(
            destination, batches, names=names, run_id=run_id, client=client, schema=reader.schema
        )
        for delivery in delivered:
            yield DeliveredFile(
                destination=destination.name,
                uri=delivery.uri,
                rows=delivery.rows,
                bytes=delivery.bytes,
                sha256=delivery.sha256,
                sub_audience=file.sub_audience,
                group=file.group,
                role=delivery.role,
            )


def _reported(batches: Iterable[pa.RecordBatch], progress: Progress) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        progress.advance(batch.num_rows)
        yield batch
