"""A run never loses a file while reporting it delivered, never reports a clean-up error for the
real cause, and a test send says what it really wrote (issue 6, defects 1–3)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from audience.cli.main import app
from audience.definitions.loader import validate_data
from audience.errors import FileNameCollision, InvalidValue
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from faultproxy import Fault, FaultProxy

GOLD = {
    "kind": "segment",
    "name": "Gold",
    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
}


def folder(name: str, path: Path, *, filename: str, **file: Any) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": name,
        "type": "filesystem",
        "settings": {"path": str(path)},
        "file": {"format": "csv", "filename": filename, **file},
        "default_attributes": ["amperity_id", "email"],
    }


def campaign(name: str, treatments: list[tuple[str, int, list[str]]]) -> dict[str, Any]:
    return {
        "kind": "campaign",
        "name": name,
        "audience": {"include": ["Gold"]},
        "treatments": [
            {"name": t, "percent": p, "destinations": destinations}
            for t, p, destinations in treatments
        ],
    }


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def store_unchecked(ws: Workspace, *documents: dict[str, Any]) -> None:
    """Save definitions without apply's checks: what a store written by an older version, or a
    check that cannot know the final folders, leaves for a run to find."""
    ws.store.save_definitions(((d["kind"], d["name"], d) for d in documents), ws.clock())


def count(ws: Workspace, sql: str) -> int:
    return int(next(iter(ws.engine.rows(exp.maybe_parse(sql))[0].values())))


def files_in(path: Path) -> list[str]:
    return (
        sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        if path.exists()
        else []
    )


COLLISIONS = {
    "a template without the group": (
        [folder("out", Path("out"), filename="{{ campaign_name }}")],
        [("A", 50, ["out"]), ("B", 50, ["out"])],
    ),
    "two treatment names that read the same once safe": (
        [folder("out", Path("out"), filename="{{ campaign_name }}_{{ group_name }}")],
        [("Offer A", 50, ["out"]), ("Offer/A", 50, ["out"])],
    ),
    "two destinations writing into one folder": (
        [
            folder("one", Path("out"), filename="{{ campaign_name }}_{{ group_name }}"),
            folder("two", Path("./out/"), filename="{{ campaign_name }}_{{ group_name }}"),
        ],
        [("A", 100, ["one", "two"])],
    ),
}


@pytest.mark.parametrize("case", list(COLLISIONS))
def test_files_that_would_share_a_name_are_refused_when_applied(
    fresh_workspace: Workspace, case: str
) -> None:
    destinations, treatments = COLLISIONS[case]
    with pytest.raises(FileNameCollision, match="would both be named"):
        apply(fresh_workspace, GOLD, *destinations, campaign("Clash", treatments))
    assert fresh_workspace.store.definition("campaign", "Clash") is None


def test_parts_of_a_split_file_never_share_a_name(fresh_workspace: Workspace) -> None:
    out = fresh_workspace.directory / "out"
    destination = folder("out", out, filename="{{ campaign_name }}", split_rows=10)
    apply(fresh_workspace, GOLD, destination, campaign("Parts", [("A", 100, ["out"])]))
    run = fresh_workspace.campaign_run("Parts")
    assert run.status == "succeeded", run.error
    data = [d for d in run.deliveries if d.role == "data"]
    assert len(data) == len({d.uri for d in data}) == len(files_in(out)) > 2
    assert sum(d.rows for d in data) == run.counts["sent"]


def test_a_run_whose_files_share_a_name_sends_nothing_and_records_nobody(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    """A folder and a link to it pass the check made when applying; the run's own check of
    every final name, before the first byte, still refuses them."""
    out = tmp_path / "drop"
    out.mkdir()
    (tmp_path / "alias").symlink_to(out)
    apply(
        fresh_workspace,
        GOLD,
        folder("one", out, filename="{{ campaign_name }}_{{ group_name }}"),
        folder("two", tmp_path / "alias", filename="{{ campaign_name }}_{{ group_name }}"),
        campaign("Clash", [("A", 100, ["one", "two"])]),
    )
    run = fresh_workspace.campaign_run("Clash")
    assert run.status == "failed"
    assert run.error is not None and "would both be named 'Clash_A.csv'" in run.error
    assert run.deliveries == [] and files_in(out) == []
    assert count(fresh_workspace, "select count(*) from audience_recipients") == 0


def test_a_stored_campaign_with_clashing_names_fails_before_sending(
    fresh_workspace: Workspace,
) -> None:
    out = fresh_workspace.directory / "out"
    apply(fresh_workspace, GOLD, folder("out", out, filename="{{ campaign_name }}"))
    store_unchecked(fresh_workspace, campaign("Clash", [("A", 50, ["out"]), ("B", 50, ["out"])]))
    run = fresh_workspace.campaign_run("Clash")
    assert run.status == "failed" and "would both be named 'Clash.csv'" in (run.error or "")
    assert files_in(out) == []
    assert count(fresh_workspace, "select count(*) from audience_recipients") == 0
    # Another, valid change is not blamed for the stored campaign's clash.
    apply(fresh_workspace, {**GOLD, "description": "gold members"})


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


def unreachable_s3(port: int) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": "down",
        "type": "s3",
        "settings": {"bucket": "nowhere", "endpoint_url": f"http://127.0.0.1:{port}"},
        "file": {"format": "csv", "filename": "{{ campaign_name }}_{{ group_name }}"},
        "default_attributes": ["amperity_id"],
    }


def with_customer_value(ws: Workspace, column: str, value: str) -> None:
    """Give one gold customer an awkward value in merged_customers (what files send)."""
    someone = ws.engine.rows(
        exp.maybe_parse("select amperity_id from customer_360 where loyalty_tier = 'gold' limit 1")
    )[0]["amperity_id"]
    ws.engine.execute(
        exp.update(
            "merged_customers",
            {column: exp.Literal.string(value)},
            where=exp.column("amperity_id").eq(exp.Literal.string(someone)),
        )
    )


def test_the_cause_of_a_failed_delivery_is_what_the_run_records(
    sample_workspace: Workspace, closed_port: int, aws_environment: None
) -> None:
    """Streaming stops half-way (here: the endpoint refuses connections); the engine's clean-up
    must not replace the cause with "connection has an open result" or "cannot DROP TABLE"."""
    ws, tag = sample_workspace, uuid.uuid4().hex[:8]
    down = {**unreachable_s3(closed_port), "name": f"down-{tag}"}
    apply(ws, GOLD, down, campaign(f"Down {tag}", [("A", 100, [down["name"]])]))
    run = ws.campaign_run(f"Down {tag}")
    assert run.status == "failed"
    assert run.error is not None and "cannot reach" in run.error, run.error
    assert "open result" not in run.error and "DROP" not in run.error
    # The engine is usable afterwards: the stream was closed and the snapshot dropped.
    assert count(ws, "select count(*) from customer_360") > 0
    assert ws.campaign_plan(f"Down {tag}").audience > 0


@pytest.mark.parametrize(
    ("file", "column", "value", "cause"),
    [
        ({"encoding": "ascii"}, "email", "zoë@example.com", "cannot be written in encoding ascii"),
        ({"quote": "none"}, "email", "a,b@example.com", "quote"),
    ],
)
def test_values_the_file_cannot_hold_fail_the_run_with_their_cause(
    fresh_workspace: Workspace, file: dict[str, str], column: str, value: str, cause: str
) -> None:
    out = fresh_workspace.directory / "out"
    with_customer_value(fresh_workspace, column, value)
    destination = folder("out", out, filename="{{ campaign_name }}_{{ group_name }}", **file)
    apply(fresh_workspace, GOLD, destination, campaign("Awkward", [("A", 100, ["out"])]))
    run = fresh_workspace.campaign_run("Awkward")
    assert run.status == "failed"
    assert run.error is not None and cause in run.error, run.error
    assert files_in(out) == []
    assert count(fresh_workspace, "select count(*) from audience_recipients") == 0


def test_a_failed_run_prints_its_json_with_the_error(
    fresh_workspace: Workspace, closed_port: int, aws_environment: None
) -> None:
    ws = fresh_workspace
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    apply(ws, GOLD, unreachable_s3(closed_port), campaign("Down", [("A", 100, ["down"])]))
    ws.close()
    result = CliRunner().invoke(app, ["campaign", "run", "Down", "-w", str(ws.directory), "--json"])
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["status"] == "failed" and "cannot reach" in printed["error"]
    assert len(printed["run_id"]) == 32


def test_a_test_send_reports_what_it_wrote(fresh_workspace: Workspace) -> None:
    out = fresh_workspace.directory / "out"
    template = "{{ campaign_name }}_{{ group_name }}_{{ run_id }}"
    destination = folder("out", out, filename=template)
    apply(
        fresh_workspace,
        GOLD,
        destination,
        campaign("Sample", [("A", 50, ["out"]), ("B", 50, ["out"])]),
    )
    audience = fresh_workspace.campaign_plan("Sample").audience
    run = fresh_workspace.campaign_run("Sample", test_records=3)
    assert run.status == "succeeded" and run.is_test
    assert audience > 6
    assert run.counts["test"] is True and run.counts["records_per_file"] == 3
    assert run.counts["files"] == 2 and run.counts["sent"] == 6
    assert "sub_audiences" not in run.counts  # not the whole audience's plan
    (ws_dir := fresh_workspace.directory / SETTINGS_FILE).write_text(
        render_settings("duckdb", None)
    )
    fresh_workspace.close()
    listed = CliRunner().invoke(app, ["runs", "-w", str(ws_dir.parent), "--json"])
    assert json.loads(listed.stdout)[0]["sent"] == 6
    shown = CliRunner().invoke(
        app, ["campaign", "test", "Sample", "-w", str(ws_dir.parent), "--records", "2"]
    )
    assert shown.exit_code == 0, shown.stderr
    assert "Test run" in shown.stdout and "4 records in 2 files" in shown.stdout


def test_an_empty_audience_is_a_warning_not_an_error(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    nobody = {
        "kind": "segment",
        "name": "Gold",
        "where": {"attribute": "lifetime_revenue", "op": "<", "value": -1},
    }
    out = ws.directory / "out"
    template = "{{ campaign_name }}_{{ group_name }}"
    apply(
        ws, nobody, folder("out", out, filename=template), campaign("Empty", [("A", 100, ["out"])])
    )
    ws.close()
    for command in (["campaign", "plan", "Empty"], ["campaign", "run", "Empty"]):
        result = CliRunner().invoke(app, [*command, "-w", str(ws.directory)])
        assert result.exit_code == 0, result.stderr
        assert "warning: nobody is in the audience of campaign 'Empty'" in result.stderr


def test_every_destination_is_checked_before_anything_is_sent(
    fresh_workspace: Workspace, moto_endpoint: str, aws_environment: None
) -> None:
    """A missing bucket fails the run before the folder destination gets its file."""
    out = fresh_workspace.directory / "out"
    missing = {
        "kind": "destination",
        "name": "missing",
        "type": "s3",
        "settings": {"bucket": f"missing-{uuid.uuid4().hex[:8]}", "endpoint_url": moto_endpoint},
        "file": {"format": "csv", "filename": "{{ campaign_name }}_{{ group_name }}"},
        "default_attributes": ["amperity_id"],
    }
    template = "{{ campaign_name }}_{{ group_name }}"
    apply(
        fresh_workspace,
        GOLD,
        folder("out", out, filename=template),
        missing,
        campaign("Both", [("A", 50, ["out"]), ("B", 50, ["missing"])]),
    )
    run = fresh_workspace.campaign_run("Both")
    assert run.status == "failed" and run.error_kind == "terminal"
    assert run.error is not None and "does not exist" in run.error, run.error
    assert run.deliveries == [] and files_in(out) == []


def test_a_retried_split_file_keeps_its_published_parts_and_cuts_the_rest_alike(
    fresh_workspace: Workspace, s3: Any, fault_proxy: FaultProxy, aws_environment: None
) -> None:
    """Parts an attempt published stay (same run id); the retry must cut the remaining parts
    at the same places, or customers go missing from the files and others come twice."""
    ws = fresh_workspace
    bucket = f"split-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    destination = {
        "kind": "destination",
        "name": "drop",
        "type": "s3",
        "settings": {"bucket": bucket, "endpoint_url": fault_proxy.url},
        "file": {"format": "csv", "filename": "{{ campaign_name }}", "split_rows": 40},
        "default_attributes": ["amperity_id", "email"],
    }
    apply(ws, GOLD, destination, campaign("Parts", [("A", 100, ["drop"])]))
    fault_proxy.add(Fault("PUT", "Parts_3.csv", action="status", status=500, times=3))
    failed = ws.campaign_run("Parts")
    assert failed.status == "failed", failed.error
    published = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in published) == ["Parts_1.csv", "Parts_2.csv"]
    # The source rows come back in another physical order before the retry.
    ws.engine.execute(
        exp.maybe_parse(
            "create or replace table merged_customers as "
            "select * from merged_customers order by amperity_id desc"
        )
    )
    retried = ws.activations.retry(failed.id)
    assert retried.status == "succeeded", retried.error
    sent: list[str] = []
    for delivery in retried.deliveries:
        key = delivery.uri.removeprefix(f"s3://{bucket}/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        sent += [line.split(",")[0] for line in body.splitlines()[1:]]
    ledger = {
        r["customer_id"]
        for r in ws.engine.rows(
            exp.maybe_parse(
                f"select customer_id from audience_recipients where run_id = '{retried.id}'"
            )
        )
    }
    assert len(sent) == len(set(sent)) == retried.counts["sent"] > 80
    assert set(sent) == ledger


def test_a_sql_segment_naming_a_column_its_tables_lack_is_refused(
    fresh_workspace: Workspace,
) -> None:
    """Inside `amperity_id IN (…)` the missing column would be the profile's own: everyone."""
    fresh_workspace.engine.execute(
        exp.maybe_parse("create table loyalty_events as select 'c1' as member_id, 500 as points")
    )
    sneaky = {
        "kind": "segment",
        "name": "Loyal",
        "sql": "select amperity_id from loyalty_events where points > 100",
    }
    with pytest.raises(InvalidValue, match="engine rejected the query"):
        apply(fresh_workspace, sneaky)
    apply(fresh_workspace, {**sneaky, "sql": "select member_id from loyalty_events"})


def test_a_recurring_campaigns_test_send_samples_the_whole_audience(
    fresh_workspace: Workspace,
) -> None:
    out = fresh_workspace.directory / "out"
    destination = folder("out", out, filename="{{ campaign_name }}_{{ group_name }}_{{ run_id }}")
    recurring = campaign("Daily", [("A", 100, ["out"])]) | {
        "schedule": {"recurring": {"every": "day", "at": "06:00", "timezone": "UTC"}}
    }
    apply(fresh_workspace, GOLD, destination, recurring)
    assert fresh_workspace.campaign_run("Daily").status == "succeeded"  # everyone is sent
    run = fresh_workspace.campaign_run("Daily", test_records=3)  # nobody is new now
    assert run.status == "succeeded" and run.counts["sent"] == 3
