"""The counts of a campaign run: who lands where (the plan), who was sent, shrink, expansion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from audience.compile.campaign import (
    GROUP,
    SUB_AUDIENCE,
    DestinationColumns,
    audience_size_query,
    leftovers_query,
    plan_query,
    sends_to,
)
from audience.compile.conditions import CompileContext
from audience.compile.sql import count_if, table
from audience.definitions.campaign import CONTROL_GROUP, Campaign
from audience.engines.base import Engine
from audience.shapes import Shape
from audience.store.runs import DeliveredFile


class GroupCount(Shape):
    """Customers of one treatment (or the control group) of one sub-audience."""

    name: str
    control: bool
    customers: int


class SubAudienceCount(Shape):
    """Customers of one sub-audience and of each of its groups."""

    name: str
    customers: int
    groups: list[GroupCount]


class CampaignPlan(Shape):
    """What a run would do now: who lands where, who is excluded, who each destination drops
    (the shape of `campaign plan --json` and of the API's plan)."""

    campaign: str
    audience: int
    excluded: int
    unmatched: int
    newly_qualified_only: bool
    sub_audiences: list[SubAudienceCount]
    shrink: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape of `campaign plan --json`."""
        return self.model_dump(mode="json")


def campaign_plan(
    campaign: Campaign,
    engine: Engine,
    ctx: CompileContext,
    source: exp.Expr,
    columns: Sequence[DestinationColumns],
    *,
    previous_exists: bool,
) -> CampaignPlan:
    """The counts of a run, from its assignments (`source`: the snapshot, or the query)."""
    rows = engine.rows(plan_query(campaign, source, columns))
    leftovers = engine.rows(leftovers_query(campaign, ctx))[0]
    if campaign.match == "first":
        # Each customer stands in one sub-audience and one group: the groups' rows add up to
        # the audience, with no count of distinct ids over the whole snapshot. (An id the
        # profile table held twice, against SPEC §1's one row per person, would count as the
        # two rows it is sent as.)
        audience = sum(int(r["customers"]) for r in rows)
    else:
        audience = engine.rows(audience_size_query(source.copy()))[0]["audience"]
    found = {(r[SUB_AUDIENCE], r[GROUP]): r for r in rows}
    subs: list[SubAudienceCount] = []
    for sub in campaign.assigned_sub_audiences:
        names = [t.name for t in sub.treatments] + ([CONTROL_GROUP] if sub.control else [])
        groups = [
            GroupCount(
                name=name,
                control=name == CONTROL_GROUP,
                customers=int(found.get((sub.name, name), {}).get("customers", 0)),
            )
            for name in names
        ]
        subs.append(
            SubAudienceCount(
                name=sub.name, customers=sum(g.customers for g in groups), groups=groups
            )
        )
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


def sent_counts(
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


def with_expansion(counts: dict[str, Any], delivered: Sequence[DeliveredFile]) -> dict[str, Any]:
    """Rows beyond one per customer, per destination (several source rows per customer)."""
    rows = _rows_per_destination(delivered)
    customers = counts["customers_per_destination"]
    return {**counts, "expansion": {d: rows.get(d, 0) - n for d, n in customers.items()}}


def test_counts(delivered: Sequence[DeliveredFile], records: int) -> dict[str, Any]:
    """What a test send really wrote: at most `records` rows per file, nobody in the ledger."""
    data = [file for file in delivered if file.role == "data"]
    return {
        "test": True,
        "records_per_file": records,
        "files": len(data),
        "sent": sum(file.rows for file in data),
        "control": 0,
        "rows_per_destination": _rows_per_destination(data),
    }


def _rows_per_destination(delivered: Sequence[DeliveredFile]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for file in delivered:
        if file.role == "data":
            rows[file.destination] = rows.get(file.destination, 0) + file.rows
    return rows
