"""What the builders cannot show survives a save: a campaign or a segment opened and saved
unchanged is stored exactly as it was (its seed, a recurring schedule's catch-up policy and
time, attributes that match the destination's defaults, values with commas, big numbers, a
purchase's table)."""

from __future__ import annotations

import re

import pytest
from browsing import Served, Visit

from audience.definitions.loader import as_documents, validate_data
from audience.workspace import Workspace

pytestmark = pytest.mark.slow

CAMPAIGN = {
    "kind": "campaign",
    "name": "Seeded",
    "audience": {"include": ["Gold"]},
    "treatments": [{"name": "Offer", "percent": 90, "destinations": ["out"]}],
    "control": 10,
    "seed": "spring-2026",
    "newly_qualified": "never_sent",
    "attributes": {"out": ["amperity_id", "email"]},
    "schedule": {"recurring": {"every": "day", "timezone": "UTC", "catch_up": "all"}},
}
SEGMENT = {
    "kind": "segment",
    "name": "Odd values",
    "where": {
        "all": [
            {"attribute": "city", "op": "in", "value": ["Washington, D.C.", "Seattle"]},
            {"attribute": "lifetime_order_count", "op": "<", "value": 9007199254740993},
            {
                "purchased": {
                    "table": "unified_transactions",
                    "within_last": {"value": 2, "unit": "weeks"},
                    "orders": {"op": ">=", "value": 1},
                }
            },
        ]
    },
}


def _stored(served: Served, kind: str, name: str) -> dict[str, object]:
    with Workspace.open(served.directory) as ws:
        found = ws.campaign(name)[0] if kind == "campaign" else ws.segment(name)[0]
    (document,) = as_documents([found])
    return document


def test_a_campaign_and_a_segment_saved_unchanged_stay_as_they_were(
    visit: Visit, served: Served
) -> None:
    with Workspace.open(served.directory) as ws:
        ws.apply_documents([validate_data(CAMPAIGN), validate_data(SEGMENT)])
    campaign, segment = (
        _stored(served, "campaign", "Seeded"),
        _stored(served, "segment", "Odd values"),
    )
    page = visit.sign_in("ed")
    visit.go("/ui/edit/campaign/Seeded")
    visit.settled()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*/ui/activations/campaign/Seeded\?said=saved"))
    assert _stored(served, "campaign", "Seeded") == campaign
    visit.go("/ui/edit/segment/Odd values")
    visit.settled()
    page.get_by_role("button", name="Save and activate").click()
    page.wait_for_url(re.compile(r".*/ui/segments/Odd%20values\?said=active"))
    assert _stored(served, "segment", "Odd values") == segment
    # A change is the form's: the rest stays as it was.
    visit.go("/ui/edit/campaign/Seeded")
    page.locator("#a-0-control").fill("20")
    page.locator("#a-0-t-0-percent").fill("80")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*said=saved"))
    changed = _stored(served, "campaign", "Seeded")
    assert changed["control"] == 20 and changed["seed"] == "spring-2026"
    assert changed["schedule"] == campaign["schedule"]  # with its catch-up policy
