"""The other pages in the browser: the orchestration query editor and its preview, a
destination's connection test and the secrets beside it, a campaign's results with its CSV, and
a journey's canvas with the counts of its nodes."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from browsing import Served, Visit
from playwright.sync_api import expect
from sqlglot import parse_one

from audience.definitions.loader import validate_data
from audience.workspace import Workspace

pytestmark = pytest.mark.slow

JOURNEY = {
    "kind": "journey",
    "name": "Gold welcome",
    "include": ["Gold"],
    "schedule": {"every": {"value": 1, "unit": "days"}},
    "nodes": [
        {"name": "Hello", "type": "activate", "destinations": ["out"]},
        {"name": "Wait a day", "type": "delay", "value": 1, "unit": "days"},
        {
            "name": "Split",
            "type": "percent_split",
            "paths": [
                {"name": "Offer", "percent": 80, "next": "Offer email"},
                {"name": "Holdout", "percent": 20, "control": True},
            ],
        },
        {"name": "Offer email", "type": "activate", "destinations": ["out"]},
    ],
}


def test_an_orchestration_is_written_previewed_and_saved(visit: Visit, served: Served) -> None:
    with Workspace.open(served.directory) as ws:
        (row,) = ws.engine.rows(
            parse_one("select count(*) as n from customer_360 where loyalty_tier = 'platinum'")
        )
    page = visit.sign_in("ada")
    page.get_by_role("button", name="New orchestration").click()
    visit.seen()
    page.get_by_label("Name").fill("Platinum extract")
    expect(page.locator(".sql-editor")).to_be_visible()  # the query is a code editor
    page.get_by_role("textbox", name="Query").fill("delete from customer_360")
    page.get_by_role("button", name="Preview the first rows").click()
    expect(page.locator("#preview")).to_contain_text("refused DELETE")
    query = "select amperity_id, email from customer_360 where loyalty_tier = 'platinum'"
    page.get_by_role("textbox", name="Query").fill(query)
    page.get_by_role("button", name="Preview the first rows").click()
    expect(page.get_by_test_id("total")).to_have_text(f"{row['n']:,}")
    expect(page.locator("#preview tbody tr")).to_have_count(min(10, row["n"]))
    visit.seen()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*/ui/activations/orchestration/Platinum%20extract.*"))
    expect(page.get_by_role("status")).to_contain_text("Saved")
    visit.seen()


def test_a_destination_is_tested_and_secrets_are_write_only(visit: Visit) -> None:
    page = visit.sign_in("ada")
    page.get_by_role("link", name="Destinations").click()
    visit.seen()
    page.get_by_label("Name", exact=True).fill("sftp_password")
    page.get_by_label("Value").fill("hunter2-hunter2")
    page.get_by_role("button", name="Set secret").click()
    expect(page.get_by_role("status")).to_contain_text("never shown again")
    expect(page.get_by_role("row", name=re.compile("sftp_password"))).to_be_visible()
    assert "hunter2" not in page.content()
    visit.seen()
    page.get_by_role("link", name="out", exact=True).click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status")).to_contain_text("is writable")
    visit.seen()
    # A new destination, written as apply takes it; a plain password in it is refused.
    visit.go("/ui/destinations")
    page.get_by_role("button", name="New destination").click()
    visit.seen()
    plain = (
        "kind: destination\nname: drop\ntype: sftp\n"
        "settings: {host: localhost, user: u, password: plain-text-pw, folder: in}\n"
    )
    page.get_by_label("The destination").fill(plain)
    page.get_by_role("button", name="Save the destination").click()
    expect(page.get_by_role("alert")).to_contain_text("secret")
    assert "plain-text-pw" not in page.locator(".flash").inner_text()
    page.get_by_label("The destination").fill(
        plain.replace("plain-text-pw", "'${secret:sftp_password}'")
    )
    page.get_by_role("button", name="Save the destination").click()
    page.wait_for_url(re.compile(r".*/ui/destinations/drop\?said=saved"))
    expect(page.get_by_role("heading", level=1)).to_have_text("drop")


def test_a_journey_is_started_from_a_form(visit: Visit, served: Served) -> None:
    page = visit.sign_in("ed")
    page.get_by_role("button", name="New journey").click()
    visit.seen()
    page.get_by_label("Name").fill("Gold hello")
    page.locator("input[name^='include.'][value='Gold']").check()
    page.get_by_role("button", name="Save as a draft").click()
    page.wait_for_url(re.compile(r".*/ui/journeys/Gold%20hello/canvas\?said=saved"))
    page.wait_for_selector("#canvas[data-drawn=true]")
    visit.seen()
    with Workspace.open(served.directory) as ws:
        journey = ws.journey("Gold hello")
    assert journey.include == ["Gold"] and [n.destinations for n in journey.nodes] == [["out"]]


def test_results_and_their_csv_and_a_journeys_canvas(visit: Visit, served: Served) -> None:
    with Workspace.open(served.directory) as ws:
        ws.apply_documents([validate_data(JOURNEY)])
        ws.activations.schedule("journey", "Gold welcome")
        start = ws.clock()
        for day in range(3):
            ws.journey_tick("Gold welcome", now=start + timedelta(days=day, minutes=1))
        counted = ws.journey_counts("Gold welcome")
        counts, took = {n.node: n for n in counted.nodes}, counted.paths
        ws.campaign_run("Gold offer")
    page = visit.sign_in("ada")
    visit.go("/ui/activations/journey/Gold welcome")
    page.get_by_role("button", name="Canvas").click()
    page.wait_for_selector("#canvas[data-drawn=true]")
    visit.seen()
    for name, count in counts.items():
        expect(page.get_by_test_id(f"entered-{name}")).to_have_text(f"{count.entered:,}")
    assert took["Holdout"] > 0  # the control path ends at once: counted all the same
    for path, number in took.items():
        expect(page.get_by_test_id(f"path-{path}")).to_have_text(f"{number:,}")
    assert page.locator("svg.canvas g.node").count() == len(JOURNEY["nodes"]) + 3  # start, ends
    page.locator("g.node[data-node='Split']").click()
    expect(page.locator(".node-details[data-node='Split']")).to_be_visible()
    expect(page.locator(".node-details[data-node='Hello']")).to_be_hidden()
    # Nodes added, changed and removed through forms.
    page.get_by_text("Add a node").click()
    page.get_by_label("Name", exact=True).fill("Reminder")
    page.get_by_label("After").select_option("Hello")
    page.locator("input[name^='destination.'][value='out']").last.check()
    page.get_by_role("button", name="Add the node").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    page.get_by_role("button", name="Wait a day", exact=True).click()  # the nodes table
    details = page.locator(".node-details[data-node='Wait a day']")
    details.get_by_label("Waits").fill("2")
    details.get_by_role("button", name="Save Wait a day").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    visit.seen()
    with Workspace.open(served.directory) as ws:
        journey = ws.journey("Gold welcome")
    assert [n.name for n in journey.nodes][:3] == ["Hello", "Reminder", "Wait a day"]
    assert journey.node("Wait a day").value == 2
    page.get_by_role("button", name="Reminder", exact=True).click()
    page.get_by_role("button", name="Remove Reminder").click()  # confirmed
    expect(page.get_by_role("status")).to_contain_text("Saved")
    with Workspace.open(served.directory) as ws:
        assert "Reminder" not in [n.name for n in ws.journey("Gold welcome").nodes]
    # A percent split through the form; connecting its path back into a loop is refused.
    page.get_by_text("Add a node").click()
    page.get_by_label("Name", exact=True).fill("Second split")
    page.get_by_label("Type").select_option("percent_split")
    page.get_by_label("After").select_option("Offer email")
    page.get_by_role("button", name="Add the node").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    page.get_by_role("button", name="Second split", exact=True).click()
    details = page.locator(".node-details[data-node='Second split']")
    details.get_by_label("Path Offer leads to").select_option("Wait a day")  # a loop
    details.get_by_role("button", name="Save Second split").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot be reached")  # refused, said
    with Workspace.open(served.directory) as ws:
        split = ws.journey("Gold welcome").node("Second split")
    assert [(p.name, p.percent, p.control, p.next) for p in split.paths] == [
        ("Offer", 90, False, None),
        ("Holdout", 10, True, None),
    ]
    visit.go("/ui/campaigns/Gold offer/results")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Results of Gold offer")
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(downloading.value.path().read_text())))
    assert {r["group"] for r in rows} == {"Offer", "Control"}
    shown = page.get_by_role("row", name=re.compile("Offer")).first
    offer = next(r for r in rows if r["group"] == "Offer")
    expect(shown).to_contain_text(f"{int(offer['recipients']):,}")
