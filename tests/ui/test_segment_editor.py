"""The segment editor in the browser: conditions from drop-downs, a count that follows every
change (checked against the engine), an exclusion, errors beside what they are about, and the
saved segment the CLI sees."""

from __future__ import annotations

import re

import pytest
from browsing import Served, Visit, customers_where
from playwright.sync_api import expect

from audience.workspace import Workspace

pytestmark = pytest.mark.slow


def test_an_editor_builds_a_segment_and_the_count_follows(visit: Visit, served: Served) -> None:
    gold = customers_where(served, "loyalty_tier = 'gold'")
    gold_reachable = customers_where(
        served, "loyalty_tier = 'gold' and not coalesce(email_opt_out, false)"
    )
    assert 0 < gold_reachable < gold
    page = visit.sign_in("ed")
    page.get_by_role("link", name="Segments").click()
    visit.seen()
    page.get_by_role("button", name="New segment").click()
    expect(page.get_by_test_id("count")).to_be_visible()
    visit.seen()
    page.get_by_label("Attribute").select_option("loyalty_tier")
    visit.settled()
    expect(page.get_by_label("Operator")).to_have_value("=")  # operators that fit text
    page.get_by_label("value", exact=True).fill("gold")
    expect(page.get_by_test_id("count")).to_have_text(f"{gold:,}")
    page.get_by_role("button", name="Exclude customers who…").click()
    visit.settled()
    exclude = page.locator("fieldset.group", has_text="Exclude")
    exclude.get_by_label("Attribute").select_option("email_opt_out")
    visit.settled()
    expect(exclude.get_by_label("Operator")).to_have_value("is_true")  # a yes/no column
    expect(page.get_by_test_id("count")).to_have_text(f"{gold_reachable:,}")
    visit.seen()
    page.get_by_role("button", name="Save and activate").click()  # no name yet: the browser
    assert page.evaluate("document.getElementById('name').validity.valueMissing")
    page.get_by_label("Name").fill("   ")  # the server's turn
    page.get_by_role("button", name="Save and activate").click()
    expect(page.get_by_role("alert").first).to_contain_text("name")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    visit.seen()
    page.get_by_label("Name").fill("Gold, reachable")
    page.get_by_role("button", name="Save and activate").click()
    page.wait_for_url(re.compile(r".*/ui/segments/Gold.*said=active"))
    expect(page.get_by_role("status")).to_contain_text("Saved and activated")
    expect(page.get_by_test_id("count")).to_have_text(f"{gold_reachable:,}")
    visit.seen()
    with Workspace.open(served.directory) as ws:
        assert ws.segment_insights("Gold, reachable").customers == gold_reachable
        saved, version = ws.segment("Gold, reachable")
    assert version == 1 and saved.status == "active"
    page.reload()  # a look records nothing
    expect(page.get_by_role("img", name=re.compile("Customers at each refresh"))).to_have_count(0)
    page.get_by_role("button", name="Record these in the history").click()  # a second point
    expect(page.get_by_role("img", name=re.compile("Customers at each refresh"))).to_be_visible()
    assert page.locator("svg.chart circle").count() >= 2
    page.get_by_label("By attribute").select_option("state")
    page.get_by_role("button", name="Break down").click()
    rows = page.get_by_role("region", name="Breakdown").locator("tbody tr")
    expect(rows.first).to_be_visible()
    visit.seen()


def test_a_bad_value_is_said_beside_its_condition_and_nothing_is_saved(
    visit: Visit, served: Served
) -> None:
    page = visit.sign_in("ed")
    visit.go("/ui/new/segment")
    page.get_by_label("Attribute").select_option("lifetime_revenue")
    visit.settled()
    page.get_by_label("Operator").select_option("between")
    visit.settled()
    page.get_by_label("from", exact=True).fill("100")  # and no upper end
    expect(page.locator("#insights")).to_contain_text("Include, condition 1")
    page.get_by_label("Name").fill("Big spenders")
    page.get_by_role("button", name="Save as draft").click()
    expect(page.locator(".field-error")).to_contain_text("Include, condition 1")
    expect(page.get_by_label("to", exact=True)).to_have_attribute("aria-invalid", "true")
    visit.seen()
    with Workspace.open(served.directory) as ws:
        assert "Big spenders" not in {s.name for s in ws.segment_summaries()}


def test_a_viewer_reads_segments_but_cannot_save_one(visit: Visit) -> None:
    page = visit.sign_in("vera")
    visit.go("/ui/segments")
    expect(page.get_by_role("button", name="New segment")).to_have_count(0)
    page.get_by_role("link", name="Gold").click()
    visit.seen()
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
