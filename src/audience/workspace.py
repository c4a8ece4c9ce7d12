"""Workspace: the one façade every front end (CLI, API, web UI, worker) calls.

It opens the engine and the metadata store named in `audience.toml`, and offers the user-level
operations: apply definitions, export them, compute and record segment insights, load sample data.

Each operation imports what it uses when it is called, never here: a command that only reads the
metadata store (`status`, `segment list`, `runs`) must not load the engines, Arrow, the compiler
or the delivery code (DESIGN §2, start-up is cheap; `tests/cli/test_startup.py` guards it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.errors import NotFound, StateError, WorkspaceError
from audience.settings import (
    DEFAULT_SCHEMA,
    SETTINGS_FILE,
    Settings,
    load_settings,
    render_settings,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from cryptography.fernet import MultiFernet

    from audience.activation.insights import Insights, Overlap, Refresh
    from audience.activation.journey import JourneyCounts, Step
    from audience.activation.lifecycle import Activations
    from audience.activation.orchestration import OrchestrationPreview
    from audience.activation.plan import CampaignPlan
    from audience.activation.results import Results
    from audience.activation.setting import CampaignSetting, Progress
    from audience.compile.catalog import Catalog
    from audience.compile.conditions import CompileContext
    from audience.definitions.campaign import Campaign
    from audience.definitions.destination import Destination
    from audience.definitions.journey import Journey
    from audience.definitions.kinds import Activation, Definition
    from audience.definitions.loader import LoadedDocument
    from audience.definitions.orchestration import Orchestration
    from audience.definitions.segment import Segment
    from audience.delivery.destinations.base import DestinationClient, ReferenceValues
    from audience.engines import Engine
    from audience.store.metadata import (
        AppliedChange,
        MetadataStore,
        SegmentSummary,
        StoredDefinition,
    )
    from audience.store.runs import Run
    from audience.store.secrets import Secrets

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (tests and `--now` pass their own)."""
    return datetime.now(UTC)


def init_workspace(
    directory: Path,
    engine: str = "duckdb",
    database_url: str | None = None,
    schema: str | None = None,
) -> Path:
    """Create `directory/audience.toml` (PostgreSQL tables in `schema`, default DEFAULT_SCHEMA);
    refuse to overwrite an existing workspace."""
    path = directory / SETTINGS_FILE
    if path.exists():
        raise WorkspaceError(f"{path} already exists")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(
            render_settings(engine, database_url, schema or DEFAULT_SCHEMA), encoding="utf-8"
        )
    except OSError as exc:  # under a file, no permission, a read-only disk
        raise WorkspaceError(
            f"cannot create the workspace in {directory}: {exc.strerror or exc}"
        ) from None
    return path


class Workspace:
    """A folder with `audience.toml`: its engine, its metadata store, its definitions."""

    def __init__(
        self,
        directory: Path,
        settings: Settings,
        clock: Clock = utc_now,
        notify: Callable[[str], None] | None = None,
        lease_clock: Clock = utc_now,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.clock = clock
        """The schedule's time: due times, relative dates, what a run is as of (`--now`)."""
        self.lease_clock = lease_clock
        """The time leases on runs are timed by: the wall clock even when `clock` simulates
        another moment (tests move it by hand)."""
        self.notify = notify
        """Hears what the user should know while waiting (a busy database), if anyone listens."""
        self.actor = "python"
        """Who the audit log says does what this workspace does (`cli:<user>`, an API user)."""

    @classmethod
    def open(
        cls,
        directory: Path,
        clock: Clock = utc_now,
        notify: Callable[[str], None] | None = None,
        lease_clock: Clock = utc_now,
    ) -> Workspace:
        """Open the workspace in `directory` (its settings are read now, connections lazily)."""
        return cls(directory, load_settings(directory), clock, notify, lease_clock)

    @cached_property
    def engine(self) -> Engine:
        """The customer-data engine, connected on first use."""
        from audience.engines import open_engine

        return open_engine(self.settings.engine, self.directory, self.notify)

    @cached_property
    def store(self) -> MetadataStore:
        """The metadata store, migrated to the current schema on first use."""
        from audience.store.metadata import MetadataStore, resolve_url

        return MetadataStore(resolve_url(self.settings.store.url, self.directory))

    @cached_property
    def catalog(self) -> Catalog:
        """The engine's tables and columns, read once per workspace object."""
        return self.engine.catalog()

    def close(self) -> None:
        """Close the connections that were opened."""
        if "engine" in self.__dict__:
            self.engine.close()
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # definitions

    def apply(self, paths: Sequence[Path]) -> list[AppliedChange]:
        """Validate every document of the files, then save them all — or nothing at all."""
        from audience.definitions.loader import load_paths

        return self.apply_documents(load_paths(paths))

    def apply_documents(self, documents: Sequence[LoadedDocument]) -> list[AppliedChange]:
        """Validate the documents against each other, the store and the engine; then save.

        A name is given once, except that a segment may come as its active version followed by
        a draft edit of it (as `export` writes it): both are saved, in that order."""
        from audience.activation.applying import apply_documents

        return apply_documents(self, documents)

    def audit(self, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Record in the audit log that this workspace's actor did `action` to `target`."""
        self.store.audit.record(
            at=self.lease_clock(), actor=self.actor, action=action, target=target, detail=detail
        )

    def export(self) -> str:
        """Every definition as YAML that `apply` takes back unchanged (`exported`)."""
        from audience.definitions.loader import dump_documents

        return dump_documents(self.exported())

    def exported(self) -> list[Definition]:
        """Every definition as `apply` takes it back unchanged, even into an empty workspace:
        each segment's active version and, where a draft edit of it is newer, that draft after
        it (`status: draft`)."""
        from audience.definitions.kinds import KINDS

        active = {stored.name: stored for stored in self.store.active_segments()}
        exported: list[StoredDefinition] = []
        for stored in self.store.definitions():
            under = active.get(stored.name) if stored.kind == "segment" else None
            if under is not None and under.version != stored.version:
                exported.append(under)  # what others use, then the draft edit over it
            exported.append(stored)
        return [KINDS[s.kind].model_validate(s.body) for s in exported]

    def segments(self) -> dict[str, Segment]:
        """The segments others may use, by name: each one's newest active version (a draft
        edit is seen only by that segment's own insights and previews until it is activated)."""
        from audience.definitions.segment import Segment

        return {
            stored.name: Segment.model_validate(stored.body)
            for stored in self.store.active_segments()
        }

    def segment_summaries(self) -> list[SegmentSummary]:
        """Every segment with its newest version, that version's status and the active one."""
        return self.store.segment_summaries()

    def draft_segments(self) -> frozenset[str]:
        """Names of the segments that exist only as drafts (no version was ever active)."""
        active = {stored.name for stored in self.store.active_segments()}
        return frozenset(s.name for s in self.store.definitions("segment")) - active

    def segment(self, name: str) -> tuple[Segment, int]:
        """The current version of a segment and its version number."""
        from audience.definitions.segment import Segment

        stored = self.store.definition("segment", name)
        if stored is None:
            raise NotFound(f"segment {name!r} does not exist; apply it first")
        return Segment.model_validate(stored.body), stored.version

    def compile_context(
        self,
        *,
        now: datetime | None = None,
        segments: dict[str, Segment] | None = None,
        drafts: frozenset[str] | None = None,
        pending: Sequence[Definition] = (),
    ) -> CompileContext:
        """What the compiler needs: the catalog, table names, the time, the segments (and the
        names of draft-only ones, so that using one says so), past activations (with the
        campaigns and journeys of `pending`, being applied)."""
        from audience.activation.history import StoredHistory
        from audience.compile.conditions import CompileContext
        from audience.definitions.campaign import Campaign
        from audience.definitions.journey import Journey

        senders: dict[str, list[Campaign | Journey]] = {}
        for definition in pending:
            if isinstance(definition, Campaign | Journey):
                senders.setdefault(definition.name, []).append(definition)
        return CompileContext(
            catalog=self.catalog,
            tables=self.settings.tables,
            now=now or self.clock(),
            segments=self.segments() if segments is None else segments,
            drafts=self.draft_segments() if drafts is None else drafts,
            history=StoredHistory(self.store.runs, self._senders, senders),
        )

    def _senders(self, name: str) -> list[Campaign | Journey]:
        """The stored campaign and journey of a name."""
        from audience.definitions.campaign import Campaign
        from audience.definitions.journey import Journey

        found: list[Campaign | Journey] = []
        for kind, model in (("campaign", Campaign), ("journey", Journey)):
            stored = self.store.definition(kind, name)
            if stored is not None:
                found.append(model.model_validate(stored.body))
        return found

    def destinations(self) -> dict[str, Destination]:
        """Every current destination by name."""
        from audience.definitions.destination import Destination

        return {
            stored.name: Destination.model_validate(stored.body)
            for stored in self.store.definitions("destination")
        }

    def destination_test(self, name: str) -> str:
        """Connect to a destination and check that files can be written there, sending no
        customer data; where files go there (a URI ending in `/`)."""
        destination = self.destinations().get(name)
        if destination is None:
            raise NotFound(f"destination {name!r} does not exist; apply it first")
        client = self.open_client(destination)
        client.check()
        return client.location("_").removesuffix("_")

    def campaign(self, name: str) -> tuple[Campaign, int]:
        """The current version of a campaign and its version number."""
        from audience.definitions.campaign import Campaign

        stored = self.store.definition("campaign", name)
        if stored is None:
            raise NotFound(f"campaign {name!r} does not exist; apply it first")
        return Campaign.model_validate(stored.body), stored.version

    def open_client(self, destination: Destination) -> DestinationClient:
        """Open a destination for delivery (a relative folder is in the workspace)."""
        from audience.delivery.shipment import open_destination

        return open_destination(destination, root=self.directory, environ=self.references)

    @cached_property
    def secrets(self) -> Secrets:
        """The workspace's stored secrets (`${secret:NAME}`), under its secret key."""
        return self.store.secrets(self._secret_keys)

    @cached_property
    def references(self) -> ReferenceValues:
        """What `${VAR}` and `${secret:NAME}` in destinations stand for."""
        from audience.delivery.destinations.base import ReferenceValues

        return ReferenceValues(os.environ, self._secret_value)

    def _secret_value(self, name: str) -> str | None:
        # The secrets (and their cipher) are opened when a destination refers to one, not
        # when any destination is opened.
        return self.secrets.value(name)

    def _secret_keys(self) -> MultiFernet:
        from audience.store.secrets import read_keys

        settings = self.settings.secrets
        key_file = settings.key_file
        return read_keys(settings.key, None if key_file is None else self.directory / key_file)

    def campaign_setting(
        self,
        *,
        ctx: CompileContext | None = None,
        destinations: dict[str, Destination] | None = None,
        now: datetime | None = None,
    ) -> CampaignSetting:
        """What a campaign needs from this workspace."""
        from audience.activation.setting import CampaignSetting

        return CampaignSetting(
            engine=self.engine,
            runs=self.store.runs,
            ctx=ctx or self.compile_context(now=now),
            destinations=self.destinations() if destinations is None else destinations,
            open_client=self.open_client,
            references=self.references,
            clock=self.clock,
        )

    # campaigns

    def campaign_plan(self, name: str, *, now: datetime | None = None) -> CampaignPlan:
        """Who would land in each sub-audience and group if the campaign ran now."""
        from audience.activation.campaign import plan_campaign

        campaign, _ = self.campaign(name)
        return plan_campaign(campaign, self.campaign_setting(now=now))

    def plan_of(self, campaign: Campaign, *, now: datetime | None = None) -> CampaignPlan:
        """The plan of a campaign as edited, before it is saved (the campaign builder's):
        checked as `apply` checks it, then counted; nothing is recorded or sent."""
        from audience.activation.campaign import plan_campaign

        self.check_activation(campaign)
        return plan_campaign(campaign, self.campaign_setting(now=now))

    def campaign_run(
        self,
        name: str,
        *,
        now: datetime | None = None,
        progress: Progress | None = None,
        test_records: int | None = None,
    ) -> Run:
        """Send a campaign (or a test sample of it) now, as the run due at `now` (default: this
        second, so that `--now` can name it again), and record the run."""
        return self.run_now("campaign", name, now=now, progress=progress, test_records=test_records)

    def run_now(
        self,
        kind: str,
        name: str,
        *,
        now: datetime | None = None,
        progress: Progress | None = None,
        test_records: int | None = None,
    ) -> Run:
        """Run an activation by hand now, as the run due at `now` (default: this second), and
        record the run."""
        from audience.activation.runner import execute, lease_of, this_process

        _, version = self.activations.definition(kind, name)
        moment = now or self.clock().replace(microsecond=0)
        run = self.store.runs.begin(
            kind=kind,
            name=name,
            version=version,
            scheduled_for=moment,
            now=self.clock(),
            worker=this_process(),
            lease=lease_of(self),
            is_test=test_records is not None,
        )
        self.audit(
            "test" if test_records is not None else "run", f"{kind}/{name}", {"run_id": run.id}
        )
        return execute(
            self, run, worker=this_process(), progress=progress, test_records=test_records
        )

    def orchestration_preview(self, name: str, rows: int = 10) -> OrchestrationPreview:
        """The first rows an orchestration's next run would send."""
        from audience.activation.orchestration import preview_orchestration
        from audience.definitions.orchestration import Orchestration

        definition, _ = self.activations.definition("orchestration", name)
        assert isinstance(definition, Orchestration)
        return preview_orchestration(definition, self.campaign_setting(), rows)

    def preview_of(self, orchestration: Orchestration, rows: int = 10) -> OrchestrationPreview:
        """The first rows an orchestration as edited would send, and how many in all, before it
        is saved (the query editor's): checked as `apply` checks it; nothing is sent."""
        from audience.activation.orchestration import preview_orchestration

        self.check_activation(orchestration)
        return preview_orchestration(orchestration, self.campaign_setting(), rows)

    def journey(self, name: str) -> Journey:
        """A journey's current definition."""
        from audience.definitions.journey import Journey

        definition, _ = self.activations.definition("journey", name)
        assert isinstance(definition, Journey)
        return definition

    def journey_tick(
        self, name: str, *, now: datetime | None = None, progress: Progress | None = None
    ) -> Run:
        """Run a journey by hand as the run due at `now` — what its schedule would do then;
        refused while it is paused or after it ended."""
        from audience.activation.journey import refuse_going_back

        self.journey(name)
        recorded = self.store.activations.get("journey", name)
        if recorded is not None and recorded.state in {"paused", "canceled"}:
            shown = "paused; resume it" if recorded.state == "paused" else "ended"
            raise StateError(f"journey {name!r} is {shown}: nothing moves")
        latest = self.store.runs.latest("journey", name, succeeded=True)
        refuse_going_back(name, latest, now or self.clock())  # before any run is recorded
        return self.run_now("journey", name, now=now, progress=progress)

    def journey_counts(self, name: str, *, now: datetime | None = None) -> JourneyCounts:
        """Customers at each node of a journey now and in all, its exits and finishes; its
        goal segments as of `now` (default: the clock)."""
        from audience.activation.journey import journey_counts

        return journey_counts(self.journey(name), self.engine, self.compile_context(now=now))

    def journey_path(self, name: str, customer_id: str) -> list[Step]:
        """One customer's travel log in a journey."""
        from audience.activation.journey import customer_path

        return customer_path(self.journey(name), self.engine, customer_id, self.settings.tables)

    @cached_property
    def activations(self) -> Activations:
        """Scheduling, statuses and runs by hand, for every kind of activation."""
        from audience.activation.lifecycle import Activations

        return Activations(self)

    @cached_property
    def results(self) -> Results:
        """Activations' results: treatment against control."""
        from audience.activation.results import Results

        return Results(self)

    def check_activation(self, definition: Activation) -> None:
        """Check an activation against what it uses now (segments active, destinations and
        columns there, its query read-only), as applying it would."""
        from audience.activation.applying import check_activation

        check_activation(self, definition)

    def release_engine(self) -> None:
        """Close the customer database until it is needed again: DuckDB lets one process
        write at a time, so a worker holds it only while it works."""
        engine = self.__dict__.pop("engine", None)
        self.forget_catalog()
        if engine is not None:
            engine.close()

    def forget_catalog(self) -> None:
        """Read the engine's tables and columns afresh when they are next needed."""
        self.__dict__.pop("catalog", None)

    def runs(self, name: str | None = None) -> list[Run]:
        """Recorded runs, newest first (of one activation when named)."""
        return self.store.runs.history(name)

    # segments

    def segment_sql(
        self, name: str, dialect: str | None = None, now: datetime | None = None
    ) -> str:
        """The compiled SQL of a segment's members, in `dialect` (default: the engine's)."""

        return self.sql_of(self.segment(name)[0], dialect, now=now)

    def sql_of(
        self, segment: Segment, dialect: str | None = None, now: datetime | None = None
    ) -> str:
        """The compiled SQL of a segment's members, saved or not, in `dialect` (default: the
        engine's)."""
        from audience.compile.conditions import segment_ids

        query = segment_ids(segment, self.compile_context(now=now))
        return query.sql(dialect or self.engine.dialect, pretty=True)

    def segment_insights(
        self,
        name: str,
        *,
        by: str | None = None,
        now: datetime | None = None,
        record: bool = True,
    ) -> Insights:
        """Compute a segment's insights now and (unless `record` is false: a page only looked
        at) record them in its history."""
        from audience.activation.insights import compute_insights

        segment, version = self.segment(name)
        ctx = self.compile_context(now=now)
        insights = compute_insights(self.engine, segment, ctx, by=by)
        if record:
            self.store.record_insights(segment.name, version, ctx.now, insights.figures())
        return insights

    def insights_of(self, segment: Segment, *, now: datetime | None = None) -> Insights:
        """The insights of a segment as edited, before it is saved (the editor's): checked as
        `apply` checks it, computed, and recorded nowhere."""
        from audience.activation.applying import check_segment
        from audience.activation.insights import compute_insights

        ctx = self.compile_context(now=now)
        check_segment(self, segment, ctx)
        return compute_insights(self.engine, segment, ctx)

    def refresh_order_summary(self, *, now: datetime | None = None) -> datetime | None:
        """Rebuild the order summary insights read, if insights keep one (the worker does it
        once a day: the day's first insights need not, and edits in place of older orders,
        which insights cannot tell from the event table's fingerprint, are read); when it was
        built, or None."""
        from audience.activation.summary import rebuild_kept_summary

        return rebuild_kept_summary(self.engine, self.compile_context(now=now))

    def attribute_values(self, table: str, attribute: str, limit: int = 25) -> list[str]:
        """The most frequent values of a column over everyone, most frequent first (the
        picklists of the segment editor)."""
        from audience.compile.insights import top_values_query

        query = top_values_query(table, attribute, self.compile_context(), limit)
        return [str(row["value"]) for row in self.engine.rows(query)]

    def segment_overlap(self, names: Sequence[str], *, now: datetime | None = None) -> Overlap:
        """How two to five segments overlap, pair by pair."""
        from audience.activation.insights import compute_overlap

        segments = [self.segment(name)[0] for name in names]
        return compute_overlap(self.engine, segments, self.compile_context(now=now))

    def segment_history(self, name: str) -> list[Refresh]:
        """Every recorded insights refresh of a segment, oldest first."""
        from audience.activation.insights import Refresh

        segment, _ = self.segment(name)
        return [Refresh.model_validate(row) for row in self.store.insight_history(segment.name)]

    def segment_preview(
        self, name: str, *, limit: int = 10, now: datetime | None = None
    ) -> pa.Table:
        """The first `limit` members with their profile columns."""
        import pyarrow as pa
        from sqlglot import exp

        from audience.compile.conditions import segment_predicate

        segment, _ = self.segment(name)
        ctx = self.compile_context(now=now)
        query = (
            exp.select(exp.Star())
            .from_(exp.table_(ctx.tables.profile, quoted=True))
            .where(segment_predicate(segment, ctx))
            .order_by(exp.column(ctx.tables.id, quoted=True))
            .limit(limit)
        )
        batches = list(self.engine.stream(query, batch_rows=max(limit, 1)))
        if not batches:
            return pa.table({})
        return pa.Table.from_batches(batches)

    # sample data

    def load_sample(self, *, profiles: int, seed: int, replace: bool = False) -> None:
        """Fill the engine with the sample customer 360 (relative to the clock's today). Tables
        of those names that an earlier demo did not make are refused (DemoTablesExist) unless
        `replace` says to replace them."""
        from audience.demo.sample import load_sample

        load_sample(
            self.engine,
            self.settings.tables,
            profiles=profiles,
            seed=seed,
            now=self.clock(),
            replace=replace,
        )
        self.forget_catalog()

    def simulate_purchases(
        self, run: Run, *, rates: dict[str, float], profiles: int, seed: int
    ) -> int:
        """Add simulated orders of a sample campaign run's recipients in the weeks after it (see
        `demo.purchases`), keeping the events table recorded as the demo's; how many."""
        from audience.demo.ownership import record_tables
        from audience.demo.purchases import simulate_purchases

        tables = self.settings.tables
        added = simulate_purchases(
            self.engine,
            events=tables.events,
            id_column=tables.id,
            run_id=run.id,
            sent_at=run.ended_at or self.clock(),
            rates=rates,
            seed=seed,
        )
        record_tables(self.engine, [tables.events], seed=seed, profiles=profiles, now=self.clock())
        return added
