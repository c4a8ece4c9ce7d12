"""The files of a campaign run: one per treatment and destination (or one per destination),
named, streamed from the run's snapshot and delivered."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from audience.activation.plan import CampaignPlan
from audience.activation.setting import CampaignSetting, Progress
from audience.compile.audience import DestinationColumns, delivery_query
from audience.definitions.campaign import Campaign
from audience.definitions.destination import Destination
from audience.definitions.templates import uses_variable
from audience.delivery.destinations.base import DestinationClient
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver
from audience.errors import DefinitionError
from audience.store.runs import DeliveredFile

TEST_PREFIX = "TEST"
"""Test sends are named `TEST_<campaign>…` so nobody mistakes them for the real thing."""


@dataclass(frozen=True)
class CampaignFile:
    """One file a run sends: to a destination, for one group (or all), with its row count."""

    destination: DestinationColumns
    sub_audience: str | None
    group: str | None
    rows: int


def planned_files(
    campaign: Campaign, columns: Sequence[DestinationColumns], plan: CampaignPlan
) -> list[CampaignFile]:
    """Every file a run sends, in order: per destination, per treatment (or one in all)."""
    counts = {(s.name, g.name): g.customers for s in plan.sub_audiences for g in s.groups}
    files: list[CampaignFile] = []
    for dest in columns:
        if campaign.files == "single":
            files.append(CampaignFile(dest, None, None, plan.audience))
            continue
        for sub in campaign.groups:
            for treatment in sub.treatments:
                if dest.name in treatment.destinations:
                    files.append(
                        CampaignFile(
                            dest, sub.name, treatment.name, counts[(sub.name, treatment.name)]
                        )
                    )
    return files


def check_names_differ(
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


def send_files(
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
    """Stream each file's rows from the snapshot to its destination; yield each delivered file
    (data, and any manifest or success file) as soon as it is published."""
    activation = f"{TEST_PREFIX}_{campaign.name}" if test_records is not None else campaign.name
    files = planned_files(campaign, columns, plan)
    check_names_differ(campaign, columns, setting.destinations)
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
