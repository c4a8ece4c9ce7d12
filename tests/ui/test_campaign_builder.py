"""The campaign builder in the browser: two sub-audiences, two treatments and a control whose
percentages the page asks to fix, an attribute added and renamed, the plan (checked against
the engine), then scheduled, sent by the server's worker, and its files read back."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest
from browsing import Served, Visit, customers_where
from playwright.sync_api import expect

from audience.workspace import Workspace

pytestmark = pytest.mark.slow


def test_an_admin_builds_schedules_and_delivers_a_campaign(visit: Visit, served: Served) -> None:
    gold = customers_where(served, "loyalty_tier = 'gold'")
    gold_in_ca = customers_where(served, "loyalty_tier = 'gold' and state = 'CA'")
    assert 0 < gold_in_ca < gold
    page = visit.sign_in("ada")
    page.get_by_role("button", name="New campaign").click()
    visit.settled()
    visit.seen()
    page.locator("#name").fill("Spring offer")
    page.locator("input[name^='include.'][value='Gold']").check()
    visit.settled()
    expect(page.get_by_test_id("audience")).to_have_text(f"{gold:,}")

    # A sub-audience for California before "all remaining recipients".
    page.get_by_role("button", name="Add sub-audience").click()
    visit.settled()
    page.locator("#a-0-name").fill("California")
    page.locator("#a-0-w-0-attribute").select_option("state")
    visit.settled()
    page.locator("#a-0-w-0-value").fill("CA")
    page.locator("#a-0-t-0-name").fill("Offer A")
    page.locator("#a-0-t-0-percent").fill("45")
    page.get_by_role("button", name="Add treatment").first.click()
    visit.settled()
    page.locator("#a-0-t-1-name").fill("Offer B")
    page.locator("#a-0-t-1-percent").fill("40")
    page.locator("#a-0-control").fill("10")
    expect(page.get_by_test_id("total-0")).to_contain_text("total 95 %: make it 100")
    page.locator("#a-0-t-1-percent").fill("45")
    expect(page.get_by_test_id("total-0")).to_contain_text("total 100 %")  # as typed
    page.get_by_role("button", name="Add attribute").click()
    visit.settled()
    page.locator("#attr-0-2-source").select_option("given_name")
    visit.settled()
    page.locator("#attr-0-2-as").fill("first_name")
    page.get_by_role("button", name="Add treatment").first.click()  # a redraw, then undo it
    visit.settled()
    page.get_by_role("button", name="Remove treatment Treatment 3").click()
    visit.settled()
    expect(page.get_by_test_id("total-0")).to_contain_text("total 100 %")
    expect(page.get_by_test_id("group-California-Offer A")).to_be_visible()
    shown = [
        int(page.get_by_test_id(f"group-California-{group}").inner_text().replace(",", ""))
        for group in ("Offer A", "Offer B", "Control")
    ]
    assert sum(shown) == gold_in_ca
    visit.seen()

    page.get_by_role("button", name="Save and schedule").click()  # confirmed
    page.wait_for_load_state("load")
    expect(page.locator(".flash.bad")).to_have_count(0)
    page.wait_for_url(re.compile(r".*/ui/activations/campaign/Spring%20offer\?said=schedule"))
    visit.seen()
    deadline = time.monotonic() + 90
    while "delivered" not in page.locator("hgroup").inner_text():
        assert time.monotonic() < deadline, page.locator("main").inner_text()
        time.sleep(0.3)
        page.reload()
    page.locator("table tbody tr th a").first.click()
    visit.seen()
    with Workspace.open(served.directory) as ws:
        (run,) = ws.runs("Spring offer")
        campaign, _ = ws.campaign("Spring offer")
    assert [s.name for s in campaign.sub_audiences] == ["California", "Everyone"]
    assert [(t.name, t.percent) for t in campaign.sub_audiences[0].treatments] == [
        ("Offer A", 45),
        ("Offer B", 45),
    ]
    sent = 0
    for delivery in (d for d in run.deliveries if d.role == "data"):
        with Path(delivery.uri.removeprefix("file://")).open(newline="") as file:
            rows = list(csv.reader(file))
        assert rows[0] == ["amperity_id", "email", "first_name"]
        assert len(rows) - 1 == delivery.rows
        sent += delivery.rows
    assert sent == run.counts["sent"] and sent + run.counts["control"] == gold
    visit.go("/ui/?kind=campaign")
    expect(page.get_by_role("row", name=re.compile("Spring offer"))).to_contain_text("delivered")
