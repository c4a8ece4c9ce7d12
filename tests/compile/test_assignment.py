"""The portable hash bucket: every engine puts every customer in the same group."""

from __future__ import annotations

import hashlib

from audience.compile.assignment import BUCKETS, group_bounds
from audience.compile.campaign import CUSTOMER, GROUP, SUB_AUDIENCE, PreviousRuns, assignment_query
from audience.definitions.campaign import Campaign
from audience.definitions.segment import Segment
from audience.workspace import Workspace

CAMPAIGN = Campaign.model_validate(
    {
        "name": "Split test",
        "audience": {"include": ["Everyone with an email"]},
        "sub_audiences": [
            {
                "name": "Loyal",
                "where": {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                "treatments": [
                    {"name": "Offer A", "percent": 45, "destinations": ["x"]},
                    {"name": "Offer B", "percent": 45, "destinations": ["x"]},
                ],
                "control": 10,
            },
            {
                "name": "Everyone else",
                "treatments": [
                    {"name": "A", "percent": 33.33, "destinations": ["x"]},
                    {"name": "B", "percent": 33.33, "destinations": ["x"]},
                    {"name": "C", "percent": 33.34, "destinations": ["x"]},
                ],
            },
        ],
    }
)
EVERYONE = Segment.model_validate(
    {"name": "Everyone with an email", "where": {"attribute": "email", "op": "is_not_empty"}}
)


def assignments(ws: Workspace) -> dict[str, tuple[str, str]]:
    ctx = ws.compile_context(segments={EVERYONE.name: EVERYONE})
    query = assignment_query(
        CAMPAIGN, ctx, dialect=ws.engine.dialect, destinations=[], previous=PreviousRuns()
    )
    return {r[CUSTOMER]: (r[SUB_AUDIENCE], r[GROUP]) for r in ws.engine.rows(query)}


def expected_group(customer: str, sub_audience: str, campaign: Campaign = CAMPAIGN) -> str:
    digest = hashlib.md5(f"{campaign.assignment_seed}:{customer}".encode()).hexdigest()
    position = int(digest[:8], 16) % BUCKETS
    sub = next(s for s in campaign.assigned_sub_audiences if s.name == sub_audience)
    return next(group for group, upper in group_bounds(sub) if position < upper)


def test_every_engine_assigns_every_customer_alike(
    sample_workspaces: dict[str, Workspace],
) -> None:
    duck, pg, spark = (assignments(sample_workspaces[e]) for e in ("duckdb", "postgres", "spark"))
    assert len(duck) > 1000
    assert duck == pg == spark
    for customer, (sub_audience, group) in duck.items():
        assert group == expected_group(customer, sub_audience)
    groups = [g for _, g in duck.values()]
    assert {"Offer A", "Offer B", "Control", "A", "B", "C"} == set(groups)


def test_group_bounds_cover_every_bucket() -> None:
    loyal, rest = CAMPAIGN.assigned_sub_audiences
    assert group_bounds(loyal) == [("Offer A", 4500), ("Offer B", 9000), ("Control", 10000)]
    assert group_bounds(rest) == [("A", 3333), ("B", 6666), ("C", 10000)]


MIXED = Campaign.model_validate(
    {
        "name": "One group beside a split",
        "audience": {"include": ["Everyone with an email"]},
        "sub_audiences": [
            {
                "name": "Loyal",
                "where": {"attribute": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                "treatments": [{"name": "Thanks", "percent": 100, "destinations": ["x"]}],
            },
            {
                "name": "Everyone else",
                "treatments": [{"name": "Offer", "percent": 80, "destinations": ["x"]}],
                "control": 20,
            },
        ],
    }
)


def test_a_sub_audience_of_one_group_takes_everyone_and_only_splits_are_hashed(
    sample_workspaces: dict[str, Workspace],
) -> None:
    for engine in ("duckdb", "postgres"):
        ws = sample_workspaces[engine]
        ctx = ws.compile_context(segments={EVERYONE.name: EVERYONE})
        one_group = Campaign.model_validate(
            {
                "name": "Everyone",
                "audience": {"include": ["Everyone with an email"]},
                "treatments": [{"name": "All", "percent": 100, "destinations": ["x"]}],
            }
        )
        unsplit = assignment_query(
            one_group, ctx, dialect=ws.engine.dialect, destinations=[], previous=PreviousRuns()
        )
        assert "MD5" not in unsplit.sql(dialect=ws.engine.dialect).upper()
        assert {r[GROUP] for r in ws.engine.rows(unsplit)} == {"All"}
        query = assignment_query(
            MIXED, ctx, dialect=ws.engine.dialect, destinations=[], previous=PreviousRuns()
        )
        rows = ws.engine.rows(query)
        loyal = [r for r in rows if r[SUB_AUDIENCE] == "Loyal"]
        rest = [r for r in rows if r[SUB_AUDIENCE] == "Everyone else"]
        assert loyal and {r[GROUP] for r in loyal} == {"Thanks"}
        for r in rest:
            assert r[GROUP] == expected_group(r[CUSTOMER], "Everyone else", MIXED)
        assert {r[GROUP] for r in rest} == {"Offer", "Control"}
