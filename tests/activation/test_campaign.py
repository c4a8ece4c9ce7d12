"""Campaigns end to end on a real workspace: plan, run, files, ledger, recurring runs, faults."""

from __future__ import annotations

import csv
import gzip
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from audience.activation import files, ledger
from audience.activation.campaign import sent_attributes
from audience.compile.campaign import PreviousRuns, assignment_query, destination_columns
from audience.definitions.loader import load_text
from audience.errors import DefinitionError
from audience.workspace import Workspace

SEGMENTS = """\
kind: segment
name: Recent buyers
where: {attribute: last_order_date, op: within_last, value: 60, unit: days}
---
kind: segment
name: Opted out
where: {attribute: email_opt_out, op: is_true}
---
kind: segment
name: Lapsed
where: {attribute: last_order_date, op: more_than_ago, value: 60, unit: days}
"""


def campaign_yaml(
    folder: Path, *, name: str = "Spring Churn", include: str = "Recent buyers", extra: str = ""
) -> str:
    return f"""\
kind: destination
name: local
type: filesystem
settings: {{path: "{folder}"}}
file: {{format: csv, compression: gzip, header: true}}
default_attributes: [amperity_id, email]
---
kind: campaign
name: "{name}"
audience:
  include: [{include}]
  exclude: [Opted out]
sub_audiences:
  - name: Loyal
    where: {{attribute: loyalty_tier, op: in, value: [gold, platinum]}}
    treatments:
      - {{name: Offer A, percent: 45, destinations: [local]}}
      - {{name: Offer B, percent: 45, destinations: [local]}}
    control: 10
  - name: Everyone else
    treatments:
      - {{name: Standard, percent: 100, destinations: [local]}}
attributes:
  local:
    - amperity_id
    - {{source: given_name, as: first_name}}
    - {{source: lifetime_revenue, table: customer_360}}
{extra}"""


def apply(ws: Workspace, text: str) -> None:
    ws.apply_documents(load_text(text, "test.yaml"))


def rows_of(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    return ws.engine.rows(exp.maybe_parse(sql, dialect="duckdb"))


def read_csv_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def campaign_ws(fresh_workspace: Workspace, tmp_path: Path) -> Workspace:
    apply(fresh_workspace, SEGMENTS + "---\n" + campaign_yaml(tmp_path / "out"))
    return fresh_workspace


@pytest.fixture
def engine_campaign_ws(fresh_engine_workspace: Workspace, tmp_path: Path) -> Workspace:
    """The campaign applied on DuckDB, then on Spark, whose ledger is Parquet tables."""
    apply(fresh_engine_workspace, SEGMENTS + "---\n" + campaign_yaml(tmp_path / "out"))
    return fresh_engine_workspace


def audience_now(ws: Workspace, *, lapsed_days_ago: int | None = None) -> dict[str, str]:
    """customer → sub-audience, by plain SQL: the oracle for the campaign's audience (recent
    buyers; or, with `lapsed_days_ago`, the Lapsed segment as it was that many days ago)."""
    today = ws.compile_context().today
    if lapsed_days_ago is None:
        where = f"last_order_date >= date '{(today - timedelta(days=60)).isoformat()}'"
    else:
        boundary = today - timedelta(days=60 + lapsed_days_ago)
        where = f"last_order_date < date '{boundary.isoformat()}'"
    rows = rows_of(
        ws,
        "select amperity_id, loyalty_tier from customer_360 "
        f"where {where} and email_opt_out is not true",
    )
    return {
        r["amperity_id"]: "Loyal" if r["loyalty_tier"] in ("gold", "platinum") else "Everyone else"
        for r in rows
    }


def test_plan_counts_every_group(campaign_ws: Workspace) -> None:
    plan = campaign_ws.campaign_plan("Spring Churn").to_json()
    expected = audience_now(campaign_ws)
    assert plan["audience"] == len(expected) > 100
    subs = {s["name"]: s for s in plan["sub_audiences"]}
    assert subs["Loyal"]["customers"] == sum(1 for s in expected.values() if s == "Loyal")
    loyal = {g["name"]: g for g in subs["Loyal"]["groups"]}
    assert loyal["Control"]["control"] is True
    assert sum(g["customers"] for g in loyal.values()) == subs["Loyal"]["customers"]
    share = loyal["Control"]["customers"] / subs["Loyal"]["customers"]
    assert 0.03 < share < 0.2  # 10 % of a few hundred customers
    opted_out = rows_of(
        campaign_ws,
        "select count(*) as n from customer_360 where email_opt_out and last_order_date >= "
        f"date '{(campaign_ws.compile_context().today - timedelta(days=60)).isoformat()}'",
    )[0]["n"]
    assert plan["excluded"] == opted_out > 0


def test_run_writes_one_file_per_treatment_with_exactly_the_attributes(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    run = campaign_ws.campaign_run("Spring Churn")
    assert run.status == "succeeded", run.error
    plan = run.counts
    files = {d.group: Path(d.uri.removeprefix("file://")) for d in run.deliveries}
    assert set(files) == {"Offer A", "Offer B", "Standard"}
    expected = audience_now(campaign_ws)
    seen: set[str] = set()
    for group, path in files.items():
        assert path.parent == tmp_path / "out"
        assert "Spring_Churn" in path.name and group.replace(" ", "_") in path.name
        rows = read_csv_gz(path)
        assert list(rows[0]) == ["amperity_id", "first_name", "lifetime_revenue"]
        ids = {r["amperity_id"] for r in rows}
        assert ids <= set(expected)  # exclusions honoured
        seen |= ids
        count = next(
            g["customers"] for s in plan["sub_audiences"] for g in s["groups"] if g["name"] == group
        )
        assert len(rows) == count
    control = rows_of(
        campaign_ws,
        f"select customer_id from audience_recipients where run_id = '{run.id}' and is_control",
    )
    assert len(control) == run.counts["control"] > 0
    assert not seen & {r["customer_id"] for r in control}  # control held back
    assert len(seen) == run.counts["sent"] == len(expected) - run.counts["control"]
    ledger = rows_of(
        campaign_ws,
        "select count(*) as n from audience_recipients "
        f"where run_id = '{run.id}' and destination = 'local'",
    )
    assert ledger[0]["n"] == run.counts["sent"]


def test_recurring_run_sends_only_the_newly_qualified(
    engine_campaign_ws: Workspace, tmp_path: Path
) -> None:
    campaign_ws = engine_campaign_ws
    apply(
        campaign_ws,
        campaign_yaml(
            tmp_path / "out",
            include="Lapsed",
            extra='schedule: {recurring: {cron: "0 6 * * 1", timezone: America/Los_Angeles}}\n',
        ),
    )
    now = campaign_ws.clock()
    first = campaign_ws.campaign_run("Spring Churn", now=now - timedelta(days=7))
    assert first.status == "succeeded", first.error
    second = campaign_ws.campaign_run("Spring Churn", now=now)
    assert second.status == "succeeded", second.error
    before = audience_now(campaign_ws, lapsed_days_ago=7)
    after = audience_now(campaign_ws, lapsed_days_ago=0)
    newly = set(after) - set(before)
    assert newly, "the sample must have customers who qualified this week"
    recorded = rows_of(
        campaign_ws, f"select customer_id from audience_recipients where run_id = '{second.id}'"
    )
    assert {r["customer_id"] for r in recorded} == newly
    again = rows_of(
        campaign_ws,
        "select count(*) as n from audience_recipients a join audience_recipients b "
        "on a.customer_id = b.customer_id "
        f"where a.run_id = '{first.id}' and b.run_id = '{second.id}'",
    )
    assert again[0]["n"] == 0


def test_a_recurring_run_checks_what_each_newly_qualified_customer_can_receive(
    engine_campaign_ws: Workspace, tmp_path: Path
) -> None:
    """After the first run only the newly qualified are looked up in the destination's table;
    those without a required value are still dropped (shrink), and nobody else is."""
    ws = engine_campaign_ws
    text = campaign_yaml(
        tmp_path / "out",
        include="Lapsed",
        extra='schedule: {recurring: {cron: "0 6 * * 1", timezone: America/Los_Angeles}}\n',
    )
    text = text.replace(
        "    - amperity_id\n", "    - amperity_id\n    - {source: address2, required: true}\n"
    )
    apply(ws, text)
    now = ws.clock()
    first = ws.campaign_run("Spring Churn", now=now - timedelta(days=7))
    assert first.status == "succeeded", first.error
    second = ws.campaign_run("Spring Churn", now=now)
    assert second.status == "succeeded", second.error
    newly = set(audience_now(ws, lapsed_days_ago=0)) - set(audience_now(ws, lapsed_days_ago=7))
    ledger = rows_of(
        ws,
        "select customer_id, is_control, destination from audience_recipients "
        f"where run_id = '{second.id}'",
    )
    held = {r["customer_id"] for r in ledger if r["is_control"]}
    addresses = {
        r["amperity_id"]: r["address2"]
        for r in rows_of(ws, "select amperity_id, address2 from merged_customers")
    }
    treated_new = newly - held
    receivable = {c for c in treated_new if (addresses.get(c) or "").strip()}
    sent = {r["customer_id"] for r in ledger if r["destination"] == "local"}
    assert newly and receivable and receivable != treated_new  # some are dropped, some sent
    assert sent == receivable
    assert second.counts["shrink"]["local"] == len(treated_new - receivable)


def test_a_destination_row_without_an_id_leaves_no_customer_undecided(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    """A row of the destination's table with a NULL id must not turn "has no row there" into
    NULL for everyone else: with or without the lookup narrowed to the newly qualified, each
    customer can or cannot receive, and shrink counts those who cannot."""
    campaign_ws.engine.execute(
        exp.maybe_parse("insert into merged_customers (amperity_id) values (null)")
    )
    campaign_ws.engine.execute(
        exp.maybe_parse(
            "delete from merged_customers where amperity_id in (select amperity_id from "
            "customer_360 where last_order_date is not null order by amperity_id limit 25)"
        )
    )
    ledger.ensure_tables(campaign_ws.engine)
    setting = campaign_ws.campaign_setting()
    campaign = campaign_ws.activations.definition("campaign", "Spring Churn")[0]
    columns = destination_columns(
        campaign.destinations, sent_attributes(campaign, setting.destinations), setting.ctx
    )
    earlier = PreviousRuns(last_success="none-yet", successes=("none-yet",))
    for previous in (PreviousRuns(), earlier):
        query = assignment_query(
            campaign, setting.ctx, dialect="duckdb", destinations=columns, previous=previous
        )
        fresh = [r for r in campaign_ws.engine.rows(query) if r["is_new"]]
        assert fresh and all(r["keep_0"] in (True, False) for r in fresh)
        assert any(r["keep_0"] is False for r in fresh)


def test_a_failed_run_changes_nothing_in_the_ledger(
    engine_campaign_ws: Workspace, tmp_path: Path
) -> None:
    campaign_ws = engine_campaign_ws
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the destination folder should be")
    apply(campaign_ws, campaign_yaml(blocker))
    failed = campaign_ws.campaign_run("Spring Churn")
    assert failed.status == "failed" and failed.error
    assert rows_of(campaign_ws, "select count(*) as n from audience_recipients")[0]["n"] == 0
    apply(campaign_ws, campaign_yaml(tmp_path / "out"))
    retried = campaign_ws.campaign_run("Spring Churn")
    assert retried.status == "succeeded"
    assert retried.id == failed.id and retried.attempt == 2  # the same run, retried


def test_running_the_same_time_twice_is_refused(campaign_ws: Workspace) -> None:
    assert campaign_ws.campaign_run("Spring Churn").status == "succeeded"
    with pytest.raises(Exception, match="already ran successfully"):
        campaign_ws.campaign_run("Spring Churn")


def test_test_send_is_named_as_a_test_and_leaves_no_ledger(campaign_ws: Workspace) -> None:
    run = campaign_ws.campaign_run("Spring Churn", test_records=5)
    assert run.status == "succeeded" and run.is_test
    assert all(Path(d.uri).name.startswith("TEST_") for d in run.deliveries)
    assert all(d.rows <= 5 for d in run.deliveries)
    assert rows_of(campaign_ws, "select count(*) as n from audience_recipients")[0]["n"] == 0


def test_empty_audience_sends_header_only_files(fresh_workspace: Workspace, tmp_path: Path) -> None:
    nobody = (
        "kind: segment\nname: Nobody\nwhere: {attribute: lifetime_revenue, op: '<', value: -1}\n"
    )
    apply(
        fresh_workspace,
        SEGMENTS + "---\n" + nobody + "---\n" + campaign_yaml(tmp_path / "o", include="Nobody"),
    )
    run = fresh_workspace.campaign_run("Spring Churn")
    assert run.status == "succeeded" and run.counts["sent"] == 0
    for delivery in run.deliveries:
        assert read_csv_gz(Path(delivery.uri.removeprefix("file://"))) == []


@pytest.mark.parametrize(
    ("change", "fragment", "field"),
    [
        (
            "percent: 45, destinations: [local]}",
            "percent: 40, destinations: [local]}",
            "sub_audiences.0.treatments: percentages of sub-audience 'Loyal' total 95",
        ),
        ("control: 10", "control: 0", "sub_audiences.0.treatments: percentages"),
        ("control: 10", "control: -10", "sub_audiences.0.control"),
        ("control: 10", 'control: "10%"', "sub_audiences.0.control: a percentage is a number"),
        (
            "[local]}\n      - {name: Offer B",
            "[]}\n      - {name: Offer B",
            "sub_audiences.0.treatments.0.destinations",
        ),
        (
            "percent: 100, destinations: [local]",
            "percent: 100, destinations: [elsewhere]",
            "sub_audiences.1.treatments.0.destinations: destination 'elsewhere' does not exist",
        ),
        (
            "- {source: given_name, as: first_name}",
            "- {source: favourite_colour}",
            "attributes.local.1.source: unknown attribute 'favourite_colour'",
        ),
        (
            "include: [Recent buyers]",
            "include: [Ghosts]",
            "audience.include.0: segment 'Ghosts' does not exist",
        ),
        ("name: Offer B", "name: Offer A", "treatment names must be unique"),
        ("include: [Recent buyers]", "include: [Draft idea]", "audience.include.0: segment"),
    ],
)
def test_bad_campaigns_are_refused_with_the_field(
    campaign_ws: Workspace, tmp_path: Path, change: str, fragment: str, field: str
) -> None:
    draft = "kind: segment\nname: Draft idea\nstatus: draft\nwhere: {attribute: state, op: is_null}"
    apply(campaign_ws, draft)
    text = campaign_yaml(tmp_path / "out")
    assert change in text
    with pytest.raises(DefinitionError) as raised:
        apply(campaign_ws, text.replace(change, fragment, 1))
    assert str(raised.value).startswith("test.yaml:")
    assert field in str(raised.value)
    assert campaign_ws.campaign("Spring Churn")[1] == 1  # the good version stands


def test_shrink_and_expansion_are_counted(campaign_ws: Workspace, tmp_path: Path) -> None:
    attributes = """attributes:
  local:
    - amperity_id
    - {source: address2, required: true}
  orders:
    - amperity_id
    - {source: order_id, table: unified_transactions}
"""
    text = campaign_yaml(tmp_path / "out")
    text = text[: text.index("\nattributes:") + 1] + attributes
    text = text.replace("destinations: [local]}", "destinations: [local, orders]}")
    orders = (
        "kind: destination\nname: orders\ntype: filesystem\n"
        f'settings: {{path: "{tmp_path / "orders"}"}}\n'
        "file: {format: csv, compression: gzip}\n---\n"
    )
    apply(campaign_ws, orders + text)
    plan = campaign_ws.campaign_plan("Spring Churn").to_json()
    run = campaign_ws.campaign_run("Spring Churn")
    assert run.status == "succeeded", run.error
    sent_ids = rows_of(
        campaign_ws,
        f"select customer_id from audience_recipients where run_id = '{run.id}' "
        "and destination = 'local'",
    )
    treated = {r["customer_id"] for r in sent_ids}
    in_list = ", ".join(f"'{c}'" for c in treated)
    without_address2 = rows_of(
        campaign_ws,
        "select count(*) as n from merged_customers where address2 is null "
        f"and amperity_id in ({in_list})",
    )[0]["n"]
    treated_total = sum(
        g["customers"] for s in plan["sub_audiences"] for g in s["groups"] if not g["control"]
    )
    assert plan["shrink"]["local"] > 0
    assert plan["shrink"]["local"] == run.counts["shrink"]["local"]
    assert (
        run.counts["customers_per_destination"]["local"] == treated_total - plan["shrink"]["local"]
    )
    assert without_address2 == 0  # shrunk customers are not in the ledger for that destination…
    local_rows = sum(d.rows for d in run.deliveries if d.destination == "local")
    assert local_rows == run.counts["customers_per_destination"]["local"]  # …nor in its files
    order_rows = sum(d.rows for d in run.deliveries if d.destination == "orders")
    expected_rows = rows_of(
        campaign_ws,
        "select count(*) as n from unified_transactions where amperity_id in (select customer_id "
        f"from audience_recipients where run_id = '{run.id}' and destination = 'orders')",
    )[0]["n"]
    assert order_rows == expected_rows
    assert (
        run.counts["expansion"]["orders"]
        == order_rows - run.counts["customers_per_destination"]["orders"]
        > 0
    )
    assert run.counts["expansion"]["local"] == 0


def test_every_match_and_a_single_file_with_the_treatment(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    text = campaign_yaml(tmp_path / "out", extra="match: every\nfiles: single\n")
    text = text.replace(
        "  - name: Everyone else\n",
        "  - name: Californians\n"
        "    where: {attribute: state, op: '=', value: CA}\n"
        "    treatments:\n"
        "      - {name: Sun, percent: 100, destinations: [local]}\n"
        "  - name: Everyone else\n",
    )
    apply(campaign_ws, text)
    run = campaign_ws.campaign_run("Spring Churn")
    assert run.status == "succeeded", run.error
    (delivery,) = [d for d in run.deliveries if d.role == "data"]
    rows = read_csv_gz(Path(delivery.uri.removeprefix("file://")))
    assert list(rows[0])[:2] == ["sub_audience", "treatment"]
    pairs = {(r["amperity_id"], r["sub_audience"]) for r in rows}
    assert len(pairs) == len(rows)
    states = {
        r["amperity_id"]: (r["state"], r["loyalty_tier"])
        for r in rows_of(campaign_ws, "select amperity_id, state, loyalty_tier from customer_360")
    }
    both = [c for c, s in pairs if s == "Loyal" and (c, "Californians") in pairs]
    assert both, "a loyal Californian is in both sub-audiences"
    for customer, sub in pairs:
        state, tier = states[customer]
        if sub == "Californians":
            assert state == "CA"
        elif sub == "Everyone else":  # only those matching no other sub-audience
            assert state != "CA" and tier not in ("gold", "platinum")


def test_single_file_per_destination_holds_only_its_treatments(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    second = (
        "kind: destination\nname: other\ntype: filesystem\n"
        f'settings: {{path: "{tmp_path / "other"}"}}\n'
        "file: {format: csv, compression: gzip}\ndefault_attributes: [amperity_id]\n---\n"
    )
    text = campaign_yaml(tmp_path / "out", extra="files: single\n")
    text = text.replace(
        "{name: Offer B, percent: 45, destinations: [local]}",
        "{name: Offer B, percent: 45, destinations: [other]}",
    )
    apply(campaign_ws, second + text)
    run = campaign_ws.campaign_run("Spring Churn")
    assert run.status == "succeeded", run.error
    by_destination = {
        d.destination: read_csv_gz(Path(d.uri.removeprefix("file://")))
        for d in run.deliveries
        if d.role == "data"
    }
    assert {r["treatment"] for r in by_destination["other"]} == {"Offer B"}
    assert "Offer B" not in {r["treatment"] for r in by_destination["local"]}
    ledger = rows_of(
        campaign_ws,
        "select destination, count(*) as n from audience_recipients "
        f"where run_id = '{run.id}' and destination is not null group by destination",
    )
    assert {r["destination"]: r["n"] for r in ledger} == {
        name: len(rows) for name, rows in by_destination.items()
    }
    assert run.counts["expansion"] == {"local": 0, "other": 0}


def test_recurring_after_a_once_run_does_not_resend(campaign_ws: Workspace, tmp_path: Path) -> None:
    now = campaign_ws.clock()
    once = campaign_ws.campaign_run("Spring Churn", now=now - timedelta(days=7))
    assert once.status == "succeeded"
    weekly = 'schedule: {recurring: {cron: "0 6 * * 1", timezone: UTC}}\n'
    apply(campaign_ws, campaign_yaml(tmp_path / "out", extra=weekly))
    again = campaign_ws.campaign_run("Spring Churn", now=now)
    assert again.status == "succeeded", again.error
    resent = rows_of(
        campaign_ws,
        "select count(*) as n from audience_recipients a join audience_recipients b "
        "on a.customer_id = b.customer_id and not a.is_control and not b.is_control "
        f"where a.run_id = '{once.id}' and b.run_id = '{again.id}'",
    )
    assert resent[0]["n"] == 0


def test_an_earlier_run_does_not_forget_the_newest_audience(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    weekly = 'schedule: {recurring: {cron: "0 6 * * 1", timezone: UTC}}\n'
    apply(campaign_ws, campaign_yaml(tmp_path / "out", include="Lapsed", extra=weekly))
    now = campaign_ws.clock()
    for days in (14, 0, 7):  # the last one is sent late, for an earlier week
        run = campaign_ws.campaign_run("Spring Churn", now=now - timedelta(days=days))
        assert run.status == "succeeded", run.error
    later = campaign_ws.campaign_run("Spring Churn", now=now + timedelta(days=1))
    assert later.status == "succeeded"
    newly = set(audience_now(campaign_ws, lapsed_days_ago=-1)) - set(
        audience_now(campaign_ws, lapsed_days_ago=0)
    )
    assert later.counts["audience"] == len(newly)  # measured against the newest audience


def test_a_customer_without_an_id_is_never_sent_nor_blocks_the_next_run(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    weekly = 'schedule: {recurring: {cron: "0 6 * * 1", timezone: UTC}}\n'
    apply(campaign_ws, campaign_yaml(tmp_path / "out", include="Lapsed", extra=weekly))
    connection = getattr(campaign_ws.engine, "connection")  # noqa: B009
    connection.execute(
        "insert into customer_360 by name select null as amperity_id, date '2020-01-01' "
        "as last_order_date, 'gold' as loyalty_tier"
    )
    now = campaign_ws.clock()
    first = campaign_ws.campaign_run("Spring Churn", now=now - timedelta(days=7))
    assert first.status == "succeeded"
    assert (
        rows_of(
            campaign_ws,
            "select count(*) as n from audience_members where customer_id is null",
        )[0]["n"]
        == 0
    )
    second = campaign_ws.campaign_run("Spring Churn", now=now)
    newly = set(audience_now(campaign_ws, lapsed_days_ago=0)) - set(
        audience_now(campaign_ws, lapsed_days_ago=7)
    )
    assert second.counts["audience"] == len(newly) > 0


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('schedule: {recurring: {cron: "every tuesday-ish"}}\n', "not a cron expression"),
        ('schedule: {recurring: {cron: "0 6 * * 1", timezone: Mars/Olympus}}\n', "unknown"),
        ('schedule: {recurring: {every: week, at: "99:99"}}\n', "time of day"),
        ("schedule: {once: asap, recurring: {every: day}}\n", "either once or recurring"),
    ],
)
def test_bad_schedules_are_refused(
    campaign_ws: Workspace, tmp_path: Path, extra: str, fragment: str
) -> None:
    with pytest.raises(DefinitionError, match=fragment) as raised:
        apply(campaign_ws, campaign_yaml(tmp_path / "out", extra=extra))
    assert "schedule" in str(raised.value)


def test_two_files_with_one_name_are_refused_when_applied(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    text = campaign_yaml(tmp_path / "out").replace("{name: Standard,", "{name: Offer A,")
    with pytest.raises(DefinitionError, match="sub_audience_name"):
        apply(campaign_ws, text)


def test_a_draft_edit_leaves_campaigns_on_the_active_version(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    before = campaign_ws.campaign_plan("Spring Churn").to_json()
    draft = (
        "kind: segment\nname: Recent buyers\nstatus: draft\nwhere: {attribute: state, op: is_null}"
    )
    apply(campaign_ws, draft)
    assert campaign_ws.campaign_plan("Spring Churn").to_json() == before
    preview = campaign_ws.segment_insights("Recent buyers")  # the draft's own figures
    assert preview.customers == 0
    exported = campaign_ws.export()
    changes = campaign_ws.apply_documents(load_text(exported, "export.yaml"))
    assert not any(c.changed for c in changes)
    active = draft.replace("status: draft", "status: active")
    apply(campaign_ws, active)  # activating it is what changes the campaign
    assert campaign_ws.campaign_plan("Spring Churn").to_json()["audience"] == 0


def test_changes_that_would_break_a_stored_campaign_are_refused(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    broken_destination = (
        "kind: destination\nname: local\ntype: filesystem\n"
        f'settings: {{path: "{tmp_path}"}}\ndefault_attributes: [amperity_id, nope_column]\n'
    )
    with pytest.raises(DefinitionError, match="nope_column") as raised:
        apply(campaign_ws, broken_destination)
    assert "default_attributes.1" in str(raised.value)
    # A campaign whose two sub-audiences both have a group "Offer A" needs the sub-audience
    # in its file names; a destination change that drops it would break that campaign.
    named = "{{ campaign_name }}_{{ sub_audience_name }}_{{ group_name }}"
    apply(
        campaign_ws,
        campaign_yaml(tmp_path / "out")
        .replace("{name: Standard,", "{name: Offer A,")
        .replace(
            "{format: csv, compression: gzip, header: true}",
            f'{{format: csv, filename: "{named}"}}',
        ),
    )
    plain = campaign_yaml(tmp_path / "out").split("---")[0]
    with pytest.raises(DefinitionError, match="would break campaign 'Spring Churn'"):
        apply(campaign_ws, plain)


def test_customers_matching_no_sub_audience_are_counted(
    campaign_ws: Workspace, tmp_path: Path
) -> None:
    text = campaign_yaml(tmp_path / "out").replace(
        "  - name: Everyone else\n",
        "  - name: Californians\n    where: {attribute: state, op: '=', value: CA}\n",
    )
    apply(campaign_ws, text)
    plan = campaign_ws.campaign_plan("Spring Churn").to_json()
    expected = audience_now(campaign_ws)
    tiers = {
        r["amperity_id"]: (r["state"], r["loyalty_tier"])
        for r in rows_of(campaign_ws, "select amperity_id, state, loyalty_tier from customer_360")
    }
    unmatched = [
        c for c in expected if tiers[c][0] != "CA" and tiers[c][1] not in ("gold", "platinum")
    ]
    assert plan["unmatched"] == len(unmatched) > 0
    assert plan["audience"] == len(expected) - len(unmatched)


def test_the_same_campaign_runs_on_every_engine(
    sample_workspaces: dict[str, Workspace], tmp_path: Path
) -> None:
    """Every engine sends the same customers in the same groups, with the same attributes."""
    sent: dict[str, dict[str, list[dict[str, str]]]] = {}
    name = f"Parity {uuid.uuid4().hex[:8]}"  # the name seeds the groups: the same on both
    for engine, ws in sample_workspaces.items():
        folder = tmp_path / engine
        apply(ws, SEGMENTS + "---\n" + campaign_yaml(folder, name=name))
        run = ws.campaign_run(name)
        assert run.status == "succeeded", run.error
        sent[engine] = {
            d.group or "": sorted(
                read_csv_gz(Path(d.uri.removeprefix("file://"))), key=lambda r: r["amperity_id"]
            )
            for d in run.deliveries
            if d.role == "data"
        }
        ledger = rows_of_any(
            ws, f"select count(*) as n from audience_recipients where run_id = '{run.id}'"
        )
        assert ledger == run.counts["sent"] + run.counts["control"]
    assert sent["duckdb"] == sent["postgres"] == sent["spark"]
    assert sum(len(rows) for rows in sent["duckdb"].values()) > 100


def rows_of_any(ws: Workspace, sql: str) -> int:
    return int(next(iter(ws.engine.rows(exp.maybe_parse(sql))[0].values())))


@pytest.mark.parametrize("split_rows", [None, 7], ids=["whole", "split into ordered parts"])
def test_a_destination_joined_once_sends_what_each_file_joined_alone_sends(
    sample_workspaces: dict[str, Workspace],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    split_rows: int | None,
) -> None:
    """A destination with several files reads them from its rows joined once with their
    attributes (a table of the run) while they are few: the same rows, columns and (for parts
    cut from one order) bytes as when each file joins the customer tables itself. An attribute
    named like the joined table's own columns keeps its name."""
    split = f", split_rows: {split_rows}" if split_rows else ""
    name = f"Joined {uuid.uuid4().hex[:8]}"
    names = "{{ sub_audience_name }}_{{ group_name }}_{{ run_id }}.csv"
    attribute = "    - {source: loyalty_tier, table: customer_360, as: Group_Name}\n"
    joined: list[str] = []
    materialise, at_most_by_default = ledger.materialise, files.JOINED_VALUES_AT_MOST

    def noting(engine: Any, name: str, query: exp.Query) -> None:
        joined.append(name)
        materialise(engine, name, query)

    for engine, ws in sample_workspaces.items():
        text = (
            campaign_yaml(tmp_path / engine, name=name)
            .replace("header: true}", f"header: true{split}, filename: {names!r}}}")
            .replace("    - amperity_id\n", "    - amperity_id\n" + attribute)
            # One treatment name in two sub-audiences: only the sub-audience tells them apart.
            .replace("{name: Standard,", "{name: Offer A,")
        )
        apply(ws, SEGMENTS + "---\n" + text)
        sent: dict[str, dict[tuple[str | None, str | None], list[bytes]]] = {}
        for way, at_most in (("joined once", at_most_by_default), ("per file", 0)):
            monkeypatch.setattr(files, "JOINED_VALUES_AT_MOST", at_most)
            monkeypatch.setattr(ledger, "materialise", noting)
            joined.clear()
            later = ws.clock() + timedelta(minutes=1 if way == "per file" else 0)
            run = ws.campaign_run(name, now=later.replace(microsecond=0))
            assert run.status == "succeeded", run.error
            # The snapshot, plus the destination's joined rows when joined once.
            assert len(joined) == (2 if way == "joined once" else 1), engine
            parts: dict[tuple[str, str], list[bytes]] = {}
            for d in sorted(run.deliveries, key=lambda d: d.uri):
                if d.role == "data":
                    data = gzip.decompress(Path(d.uri.removeprefix("file://")).read_bytes())
                    parts.setdefault((d.sub_audience, d.group), []).append(data)
            sent[way] = parts
        assert set(sent["joined once"]) == {
            ("Loyal", "Offer A"),
            ("Loyal", "Offer B"),
            ("Everyone else", "Offer A"),
        }
        if split_rows:
            assert sent["joined once"] == sent["per file"], engine
            assert max(len(p) for p in sent["joined once"].values()) > 1
        else:
            for group, parts in sent["joined once"].items():
                header, *ours = parts[0].decode().splitlines()
                theirs = sent["per file"][group][0].decode().splitlines()
                assert header == theirs[0] == "amperity_id,Group_Name,first_name,lifetime_revenue"
                assert sorted(ours) == sorted(theirs[1:]) and ours, (engine, group)
