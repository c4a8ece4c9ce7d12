"""The Activations page, an activation's page and its runs, in the browser: sign in, find the
campaign, schedule it, watch the server's worker deliver it, open the run and its file."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import httpx
import pytest
from browsing import PASSWORD, Served, Visit
from playwright.sync_api import expect
from sqlglot import parse_one

from audience.workspace import Workspace

pytestmark = pytest.mark.slow


def test_a_wrong_password_is_said_on_the_form_and_pages_need_a_session(visit: Visit) -> None:
    page = visit.go("/ui/runs")
    assert "/ui/login?next=/ui/runs" in page.url
    page.fill("#name", "ada")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
    visit.seen()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/runs$"))  # back where they were going
    visit.seen()


def test_an_admin_schedules_a_campaign_and_sees_it_delivered(visit: Visit, served: Served) -> None:
    page = visit.sign_in("ada")
    row = page.get_by_role("row", name=re.compile("Gold offer"))
    expect(row).to_contain_text("draft")
    expect(row).to_contain_text("once, as soon as possible")
    page.get_by_role("link", name=re.compile(r"Journeys")).click()
    expect(page.get_by_text("No activation matches")).to_be_visible()
    visit.seen()
    page.get_by_role("link", name=re.compile(r"Campaigns")).click()
    page.get_by_role("link", name="Gold offer").click()
    visit.seen()
    expect(page.get_by_role("heading", level=1)).to_have_text("Gold offer")
    page.get_by_role("button", name="Schedule").click()  # confirmed (the dialog is accepted)
    expect(page.get_by_role("status")).to_contain_text("Scheduled")
    visit.seen()
    deadline = time.monotonic() + 60
    while "delivered" not in page.locator("hgroup").inner_text():
        assert time.monotonic() < deadline, page.locator("main").inner_text()
        time.sleep(0.3)
        page.reload()
    visit.seen()
    page.locator("table tbody tr th a").first.click()
    visit.seen()
    expect(page.locator("hgroup")).to_contain_text("succeeded")
    uri = page.locator("table tbody tr th code").first.inner_text()
    sent = Path(uri.removeprefix("file://"))
    with sent.open(newline="") as file:
        rows = list(csv.DictReader(file))
    rows_shown = page.locator("table tbody tr td.num").first.inner_text()
    assert int(rows_shown.replace(",", "")) == len(rows) > 0
    with Workspace.open(served.directory) as ws:
        (run,) = ws.runs("Gold offer")
        (gold,) = ws.engine.rows(
            parse_one("select count(*) as n from customer_360 where loyalty_tier = 'gold'")
        )
    assert run.counts["sent"] == len(rows) and run.sent + run.counts["control"] == gold["n"]
    page.goto(served.base + "/ui/")
    expect(page.get_by_role("row", name=re.compile("Gold offer"))).to_contain_text("delivered")
    visit.seen()


def test_a_viewer_sees_no_buttons_and_a_form_without_its_token_is_refused(
    visit: Visit, served: Served
) -> None:
    page = visit.sign_in("vera")
    visit.go("/ui/activations/campaign/Gold offer")
    expect(page.get_by_role("button", name="Schedule")).to_have_count(0)
    session = {c["name"]: c["value"] for c in page.context.cookies()}
    refused = httpx.post(
        f"{served.base}/ui/activations/campaign/Gold offer/schedule", cookies=session
    )
    assert refused.status_code == 403  # no CSRF token
    as_viewer = page.request.post(
        f"{served.base}/ui/activations/campaign/Gold offer/schedule",
        form={"csrf_token": page.locator("input[name=csrf_token]").first.input_value()},
    )
    assert as_viewer.status == 403 and "needs the admin role" in as_viewer.text()
    visit.go("/ui/activations/campaign/Nothing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
