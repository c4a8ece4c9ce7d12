"""The files of a campaign run: one per treatment and destination (or one per destination),
named, streamed from the run's snapshot and delivered."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import pyarrow as pa
from sqlglot import exp

from audience.activation import ledger
from audience.activation.plan import CampaignPlan
from audience.activation.recording import RunRecording
from audience.activation.setting import CampaignSetting, Progress
from audience.compile.campaign import (
    DestinationColumns,
    JoinedRows,
    delivery_query,
    joined_file_query,
    joined_rows_query,
)
from audience.definitions.campaign import REMAINING, Campaign
from audience.definitions.destination import Destination
from audience.definitions.journey import Journey
from audience.definitions.orchestration import Orchestration
from audience.delivery.destinations.base import Delivery, DestinationClient
from audience.delivery.naming import NameValues
from audience.delivery.shipment import RunNames, deliver, discard_unfinished, final_names
from audience.errors import AudienceError, FileNameCollision
from audience.scheduling.schedule import ScheduleHistory, next_due
from audience.store.runs import DeliveredFile, Run

TEST_PREFIX = "TEST"
"""Test sends are named `TEST_<campaign>…` so nobody mistakes them for the real thing."""
SAMPLE_RUN_ID = "0" * 32
"""A run id to render file names with when a campaign is applied, before any run exists."""
JOINED_VALUES_AT_MOST = 10_000_000
"""The most values (rows × attributes) of one destination joined once with their attributes
into a table its files read (`_Joins`): about 150 MB of short text. A larger audience is joined
once per file, streaming, so a run's memory does not grow with its audience."""


@dataclass(frozen=True)
class CampaignFile:
    """One file a run sends: to a destination, for one group (or all), with its row count."""

    destination: DestinationColumns
    sub_audience: str | None
    group: str | None
    rows: int


def planned_files(
    campaign: Campaign, columns: Sequence[DestinationColumns], plan: CampaignPlan | None
) -> list[CampaignFile]:
    """Every file a run sends, in order: per destination, per treatment (or one in all), with
    its customers when a plan is given (0 otherwise)."""
    counts = (
        {(s.name, g.name): g.customers for s in plan.sub_audiences for g in s.groups}
        if plan is not None
        else {}
    )
    files: list[CampaignFile] = []
    for dest in columns:
        if campaign.files == "single":
            files.append(CampaignFile(dest, None, None, plan.audience if plan else 0))
            continue
        for sub in campaign.assigned_sub_audiences:
            for treatment in sub.treatments:
                if dest.name in treatment.destinations:
                    rows = counts.get((sub.name, treatment.name), 0)
                    files.append(CampaignFile(dest, sub.name, treatment.name, rows))
    return files


def _name_values(
    activation: str, now: datetime, sub_audience: str | None, group: str | None
) -> NameValues:
    return NameValues(
        activation_name=activation,
        now=now,
        group_name=group or "all",
        sub_audience_name=sub_audience or "",
    )


def _described(file: CampaignFile) -> str:
    where = f" of {file.sub_audience!r}" if file.sub_audience not in {None, REMAINING} else ""
    return f"{file.group or 'all treatments'!r}{where} to {file.destination.name!r}"


def check_file_names(
    campaign: Campaign,
    columns: Sequence[DestinationColumns],
    destinations: Mapping[str, Destination],
    now: datetime,
) -> None:
    """Refuse, when the campaign is applied, two of its files that would share a name in one
    place: a template without the group, treatment names that read the same once made safe,
    two destinations writing into one folder or prefix."""
    seen: dict[tuple[str, str], CampaignFile] = {}
    for file in planned_files(campaign, columns, None):
        destination = destinations[file.destination.name]
        split = destination.file.split_rows
        # Two parts show whether part numbers keep a split file's parts apart.
        rows = 2 * split if split is not None else 2
        values = _name_values(campaign.name, now, file.sub_audience, file.group)
        for name in final_names(destination, values, run_id=SAMPLE_RUN_ID, rows=rows):
            earlier = seen.setdefault((destination.settings.place(), name), file)
            if earlier is not file:
                raise FileNameCollision(
                    f"the files for {_described(earlier)} and {_described(file)} would both be "
                    f"named {name!r} in the same place; add {{{{ group_name }}}}, "
                    "{{ sub_audience_name }} or {{ destination_name }} to the filename "
                    "template, or rename a treatment",
                    field="treatments" if not campaign.sub_audiences else "sub_audiences",
                )


def send_files(
    campaign: Campaign,
    setting: CampaignSetting,
    columns: Sequence[DestinationColumns],
    run_table: str,
    recording: RunRecording,
    progress: Progress,
    test_records: int | None,
    plan: CampaignPlan,
) -> Iterator[DeliveredFile]:
    """Stream each file's rows from the snapshot to its destination; record and yield each
    delivered file (data, and any manifest or success file) as soon as it is published.

    Every final name of the run is checked before the first byte is sent: two files never
    share one (the second would pass for the first, "already delivered", and be lost)."""
    activation = f"{TEST_PREFIX}_{campaign.name}" if test_records is not None else campaign.name
    # Names carry the run's due time, not the wall clock: a retry names its files the same.
    run_id, now = recording.run.id, recording.run.scheduled_for
    files = planned_files(campaign, columns, plan)
    clients: dict[str, DestinationClient] = {}
    for file in files:
        name = file.destination.name
        if name not in clients:
            clients[name] = setting.open_client(setting.destinations[name])
    # Every destination is checked before the first byte goes anywhere: a missing bucket must
    # not leave the other destinations sent and the run half-done.
    for client in clients.values():
        client.check()
    to_send: list[_FileToSend] = []
    expected = RunNames()
    for file in files:
        rows = min(file.rows, test_records) if test_records is not None else file.rows
        destination = setting.destinations[file.destination.name]
        values = _name_values(activation, now, file.sub_audience, file.group)
        names = final_names(destination, values, run_id=run_id, rows=rows)
        for name in names:
            expected.claim(clients[destination.name], name, _described(file))
        to_send.append(_FileToSend(file, destination, rows, values, names))
    claimed = RunNames()
    earlier = recording.earlier_files()
    for planned in to_send:
        planned.find_earlier(clients[planned.destination.name], earlier)
    joins = _Joins(campaign, setting, run_table, to_send, test_records)
    try:
        for planned in to_send:
            file, destination = planned.file, planned.destination
            client = clients[destination.name]
            if planned.published_whole:
                # Published whole by an earlier attempt: nothing to read, nothing to send.
                for name in planned.names:
                    claimed.claim(client, name, _described(file))
                yield from (recording.earlier[location] for location in planned.locations)
                continue
            query = joins.query(planned)
            progress.step(f"{file.group or 'all treatments'} → {destination.name}", planned.rows)
            recorded: list[DeliveredFile] = []

            def record(
                delivery: Delivery, file: CampaignFile = file, into: list[DeliveredFile] = recorded
            ) -> None:
                # The moment it is published, before the next part is sent.
                into.append(
                    recording.published(delivery, sub_audience=file.sub_audience, group=file.group)
                )

            # Closed however delivery ends: an open result would block the engine's clean-up,
            # whose error would then hide the real cause of the failure.
            with setting.engine.stream(query) as reader:
                deliver(
                    destination,
                    _reported(reader, progress),
                    names=planned.values,
                    run_id=run_id,
                    client=client,
                    schema=reader.schema,
                    claimed=claimed,
                    earlier=earlier,
                    references=setting.references,
                    on_published=record,
                    before_publish=recording.settle,
                )
            yield from recorded
    finally:
        joins.close()


@dataclass
class _FileToSend:
    """A planned file with what this run knows of it: its rows, names and whether an earlier
    attempt published it whole (then nothing is read or sent)."""

    file: CampaignFile
    destination: Destination
    rows: int
    values: NameValues
    names: list[str]
    locations: list[str] = field(default_factory=list)
    published_whole: bool = False

    def find_earlier(self, client: DestinationClient, earlier: Mapping[str, object]) -> None:
        """Look its names up among what earlier attempts published (a file split by size may
        have more parts than names known, so it is never taken as whole)."""
        if not earlier:
            return
        self.locations = [client.location(name) for name in self.names]
        exact = self.destination.file.split_size is None
        self.published_whole = exact and all(location in earlier for location in self.locations)


class _Joins:
    """Where each file's rows come from: its own join of the snapshot with the customer
    tables, or, for a destination with two files or more still to read whose values are few
    enough to hold, a table of its rows joined with their attributes once (`JoinedRows`), made
    at its first file and dropped at the next destination or the end (each file's own join
    would read every row of the customer tables again)."""

    def __init__(
        self,
        campaign: Campaign,
        setting: CampaignSetting,
        run_table: str,
        to_send: Sequence[_FileToSend],
        test_records: int | None,
    ) -> None:
        self._campaign, self._setting, self._run_table = campaign, setting, run_table
        self._test_records = test_records
        self._unread = [planned for planned in to_send if not planned.published_whole]
        self._joined: JoinedRows | None = None

    def query(self, planned: _FileToSend) -> exp.Select:
        """The query of the file's rows."""
        file = planned.file
        # A file split into parts is cut from one order on every attempt: a retry keeps the
        # parts an earlier attempt published, and must cut the rest at the same places.
        ordered = planned.destination.file.split
        if self._joined is not None and self._joined.destination != file.destination:
            self.close()
        if self._joined is None:
            self._join(file.destination)
        if self._joined is not None and file.sub_audience is not None and file.group is not None:
            return joined_file_query(
                self._joined, sub_audience=file.sub_audience, group=file.group, ordered=ordered
            )
        return delivery_query(
            self._run_table,
            self._campaign,
            file.destination,
            self._setting.ctx,
            sub_audience=file.sub_audience,
            group=file.group,
            with_group_columns=self._campaign.files == "single",
            limit=self._test_records,
            ordered=ordered,
        )

    def _join(self, destination: DestinationColumns) -> None:
        """Make the destination's joined table, if its files are to be read from one."""
        if self._test_records is not None:
            return
        mine = [planned.file for planned in self._unread if planned.file.destination == destination]
        files = tuple(
            (file.sub_audience, file.group)
            for file in mine
            if file.sub_audience is not None and file.group is not None
        )
        values = sum(file.rows for file in mine) * len(destination.attributes)
        if len(files) < 2 or values > JOINED_VALUES_AT_MOST:
            return
        joined = JoinedRows(f"{self._run_table}_joined", destination, files)
        # Kept before it is made: a table half made is dropped too.
        self._joined = joined
        ledger.materialise(
            self._setting.engine,
            joined.table,
            joined_rows_query(self._run_table, self._campaign, joined, self._setting.ctx),
        )

    def close(self) -> None:
        """Drop the joined table, if any. It goes with the connection anyway: a failure to
        drop it must not hide how the run ended."""
        if self._joined is not None:
            table, self._joined = self._joined.table, None
            with contextlib.suppress(AudienceError):
                ledger.drop(self._setting.engine, table)


def discard_leftovers(
    campaign: Campaign,
    destinations: Mapping[str, Destination],
    open_client: Callable[[Destination], DestinationClient],
    run: Run,
) -> int:
    """Remove what the run's dead attempt left half-written at its destinations (temporary
    files, unfinished uploads) once the run is canceled; how many leftovers there were."""
    activation = f"{TEST_PREFIX}_{campaign.name}" if run.is_test else campaign.name
    removed = 0
    for name in campaign.destinations:
        destination = destinations[name]
        client = open_client(destination)
        groups: list[tuple[str | None, str | None]] = (
            [(None, None)]
            if campaign.files == "single"
            else [
                (sub.name, treatment.name)
                for sub in campaign.assigned_sub_audiences
                for treatment in sub.treatments
                if name in treatment.destinations
            ]
        )
        for sub_audience, group in groups:
            values = _name_values(activation, run.scheduled_for, sub_audience, group)
            removed += discard_unfinished(destination, values, run_id=run.id, client=client)
    return removed


def _reported(batches: Iterable[pa.RecordBatch], progress: Progress) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        progress.advance(batch.num_rows)
        yield batch


def check_runs_name_files_apart(
    activation: Campaign | Journey | Orchestration,
    destinations: Mapping[str, Destination],
    now: datetime,
) -> None:
    """Refuse, when an activation is applied, a schedule two of whose next runs would write
    files of the same name (a filename that says only the day, on a schedule that runs more
    than once a day): the later run would find the earlier one's file and fail."""
    schedule = activation.schedule
    if schedule is None:
        return
    history, dues = ScheduleHistory(since=now), list[datetime]()
    while len(dues) < RUNS_LOOKED_AHEAD:
        due = next_due(schedule, after=dues[-1] if dues else now, history=history)
        if due is None:
            break
        dues.append(due)
        history = replace(history, runs=len(dues), last_due=due)
    if len(dues) < 2:
        return
    sub_audience, group = None, None  # an orchestration's names: its one file, "all"
    if isinstance(activation, Orchestration):
        used = [activation.sent_to(destinations[activation.destination])]
    else:
        sub_audience, group = "sub", "group"
        names = (
            activation.destinations
            if isinstance(activation, Campaign)
            else [d for node in activation.nodes for d in node.destinations]
        )
        used = [destinations[name] for name in dict.fromkeys(names)]
    for destination in used:
        seen: dict[str, datetime] = {}
        for number, due in enumerate(dues):
            values = _name_values(activation.name, due, sub_audience, group)
            for name in final_names(destination, values, run_id=f"{number:032d}", rows=1):
                earlier = seen.setdefault(name, due)
                if earlier != due:
                    raise FileNameCollision(
                        f"the runs due {earlier.isoformat()} and {due.isoformat()} would both "
                        f"write {name!r} to {destination.name!r}: put the time in its file "
                        "name (e.g. {{ now | format('%Y%m%d_%H%M') }}) or {{ run_id }}",
                        field="schedule",
                    )


RUNS_LOOKED_AHEAD = 8
"""How many of a schedule's next due times the file-name check compares (a day's worth of
runs every three hours)."""
