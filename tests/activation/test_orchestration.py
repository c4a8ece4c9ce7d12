"""Orchestrations end to end (issue 8): a read-only query's result sent to a destination, by hand,
on a schedule, incrementally; queries that write or read files refused by parsing."""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from audience.cli.main import app
from audience.definitions.loader import load_text, validate_data
from audience.errors import (
    EngineError,
    FileNameCollision,
    InvalidValue,
    ScheduleError,
    StateError,
    UnknownReference,
    UnsafeQuery,
)
from audience.scheduling.worker import Worker
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from realservices import ENGINES, NOW, make_workspace

EXTRACT = (
    "select amperity_id, email, loyalty_tier, lifetime_revenue from customer_360 "
    "where loyalty_tier in ('gold', 'platinum')"
)


def folder(path: Path, name: str = "drop", **file: Any) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": name,
        "type": "filesystem",
        "settings": {"path": str(path)},
        "file": {"format": "csv", "filename": "{{ activation_name }}_{{ run_id }}", **file},
    }


def orchestration(name: str, query: str = EXTRACT, **extra: Any) -> dict[str, Any]:
    return {"kind": "orchestration", "name": name, "query": query, "destination": "drop", **extra}


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize("sample_workspace", ENGINES, indirect=True)
def test_a_run_sends_exactly_the_querys_rows(sample_workspace: Workspace, tmp_path: Path) -> None:
    ws, name = sample_workspace, f"Extract {uuid.uuid4().hex[:6]}"
    apply(ws, folder(tmp_path / "out"), orchestration(name))
    run = ws.run_now("orchestration", name)
    assert run.status == "succeeded", run.error
    (delivery,) = run.deliveries
    (sent,) = (tmp_path / "out").glob("*.csv")
    assert delivery.uri == sent.resolve().as_uri() and delivery.rows == run.counts["rows"]
    expected = ws.engine.rows(exp.maybe_parse(EXTRACT, dialect=ws.engine.dialect))
    rows = read_csv(sent)
    assert len(rows) == len(expected) == run.counts["rows"] > 0
    key = "amperity_id"
    assert sorted(rows, key=lambda r: r[key]) == sorted(
        ({k: as_text(v) for k, v in row.items()} for row in expected), key=lambda r: r[key]
    )


REFUSED = [
    ("drop table customer_360", "refused DROP"),
    ("insert into customer_360 (amperity_id) values ('x')", "refused INSERT"),
    ("update customer_360 set email = null", "refused UPDATE"),
    ("delete from customer_360", "refused DELETE"),
    ("create table copy_of as select * from customer_360", "refused CREATE"),
    ("copy customer_360 to 'stolen.csv'", "refused COPY"),
    ("set search_path = public", "refused SET"),
    ("pragma database_list", "refused PRAGMA"),
    ("select 1 as a; select 2 as a", "2 statements"),
    ("select * from read_csv('/etc/passwd')", "read_csv"),
    ("select * from read_parquet('data.parquet')", "read_parquet"),
    ("select * from 'customers.csv'", "'customers.csv': it is not a table"),
    ("select pg_read_file('/etc/passwd') as secret", "pg_read_file"),
    ("select current_setting('temp_directory') as where_it_writes", "current_setting"),
    ("select getenv('HOME') as home", "getenv"),
    ("select * from duckdb_settings()", "duckdb_settings"),
    (
        "with gone as (delete from customer_360 returning amperity_id) select * from gone",
        "refused DELETE inside the query",
    ),
    ("select * into stolen from customer_360", "SELECT … INTO"),
    ("select amperity_id from customer_360 for update", "FOR UPDATE"),
    # state that outlives the query, or reads past the check of the tables
    ("select amperity_id, setseed(0.5) as seeded from customer_360", "refused setseed"),
    ("select nextval('ids') as n", "refused nextval"),
    ("select setval('ids', 1) as n", "refused setval"),
    ("select pg_advisory_lock(1) as held", "refused pg_advisory_lock"),
    ("select pg_try_advisory_xact_lock_shared(1) as held", "refused pg_try_advisory_xact"),
    ("select pg_advisory_unlock_all() as freed", "refused pg_advisory_unlock_all"),
    ("select set_config('search_path', 'x', false) as s", "refused set_config"),
    ("select pg_notify('channel', 'x') as n", "refused pg_notify"),
    ("select query_to_xml('select 1', true, false, '') as x", "refused query_to_xml"),
    ("select sleep_ms(1) as slept", "refused sleep_ms"),
    ("select txid_current() as spent", "refused txid_current"),
    ("select inet_server_addr() as server", "refused inet_server_addr"),
    ("selec amperity_id from customer_360", "does not parse"),
]


@pytest.mark.parametrize("sample_workspace", ENGINES, indirect=True)
@pytest.mark.parametrize(("query", "named"), REFUSED)
def test_a_query_that_does_more_than_read_is_refused_when_applied(
    sample_workspace: Workspace, tmp_path: Path, query: str, named: str
) -> None:
    ws, name = sample_workspace, f"Refused {uuid.uuid4().hex[:6]}"
    if "ATTACH" in query.upper() and ws.engine.dialect != "duckdb":
        pytest.skip("ATTACH is DuckDB's")
    with pytest.raises(UnsafeQuery, match=named) as refused:
        apply(ws, folder(tmp_path / "out"), orchestration(name, query))
    assert refused.value.field == "query"
    assert ws.store.definition("orchestration", name) is None  # nothing saved
    assert not (tmp_path / "out").exists()


def test_sql_the_engine_rejects_gives_the_engines_message_and_sends_nothing(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    with pytest.raises(UnsafeQuery, match=r"engine rejected it: .*no_such_column"):
        apply(
            ws,
            folder(tmp_path / "out"),
            orchestration("Bad", "select no_such_column from customer_360"),
        )
    with pytest.raises(UnknownReference, match="no column 'updated_at'"):
        apply(ws, folder(tmp_path / "out"), orchestration("Bad", incremental_by="updated_at"))
    with pytest.raises(UnknownReference, match="destination 'nowhere' does not exist"):
        apply(ws, {**orchestration("Bad"), "destination": "nowhere"})
    assert not (tmp_path / "out").exists()


def test_an_incremental_run_sends_only_rows_above_the_last_high_water_mark(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    connection = ws.engine.connection  # type: ignore[attr-defined]
    connection.execute(
        "create table events as select range as id, 'e' || range as label from range(1, 101)"
        " union all select null, 'no id' from range(3)"  # never sent, not even by the first run
    )
    ws.forget_catalog()  # the new table is seen
    out = tmp_path / "out"
    apply(
        ws,
        folder(out),
        orchestration("Events", "select id, label from events", incremental_by="id"),
    )
    first = ws.run_now("orchestration", "Events", now=NOW)
    assert first.counts["rows"] == 100 and first.counts["high_water_mark"] == 100
    ws.engine.connection.execute(  # type: ignore[attr-defined]
        "insert into events select range, 'late' from range(101, 121)"
    )
    preview = ws.orchestration_preview("Events", rows=5).shape().model_dump(mode="json")
    assert preview["high_water_mark"] == 100 and [r["id"] for r in preview["rows"]][:1] != [1]
    assert preview["total"] == 20  # only the rows above the mark
    second = ws.run_now("orchestration", "Events", now=NOW + timedelta(days=1))
    assert second.counts["rows"] == 20 and second.counts["high_water_mark"] == 120
    third = ws.run_now("orchestration", "Events", now=NOW + timedelta(days=2))
    assert third.counts["rows"] == 0 and third.counts["high_water_mark"] == 120  # kept
    sent = {int(row["id"]) for path in out.glob("*.csv") for row in read_csv(path)}
    assert sent == set(range(1, 121))
    (late,) = [p for p in out.glob("*.csv") if second.id in p.name]
    assert {row["label"] for row in read_csv(late)} == {"late"}


def test_a_scheduled_orchestration_runs_when_due_and_ends_completed(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    schedule = {"recurring": {"cron": "30 8 * * *", "timezone": "UTC", "end": {"after": 1}}}
    apply(ws, folder(tmp_path / "out"), orchestration("Nightly", schedule=schedule))
    apply(ws, orchestration("By hand"))
    with pytest.raises(StateError, match="has no schedule"):
        ws.activations.schedule("orchestration", "By hand")
    assert ws.activations.status_of("orchestration", "By hand").schedule == "by hand"
    ws.activations.schedule("orchestration", "Nightly")
    assert ws.activations.status_of("orchestration", "Nightly").status == "scheduled"
    ws.clock = lambda: NOW.replace(hour=8, minute=31) + timedelta(days=1)
    (run,) = Worker(ws, name="w").tick()
    assert run.status == "succeeded" and run.activation_kind == "orchestration", run.error
    assert run.scheduled_for == NOW.replace(hour=8, minute=30) + timedelta(days=1)
    status = ws.activations.status_of("orchestration", "Nightly")
    assert status.status == "completed" and status.last_run is not None
    kinds = {(s.kind, s.name) for s in ws.activations.status()}
    assert {("orchestration", "Nightly"), ("orchestration", "By hand")} <= kinds


def test_the_cli_previews_runs_and_refuses_in_one_line(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    apply(ws, folder(tmp_path / "out", format="json"), orchestration("Tiers", EXTRACT))
    ws.close()
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    where = ["-w", str(ws.directory)]
    cli = CliRunner()
    shown = cli.invoke(app, ["orchestration", "preview", "Tiers", "--rows", "3", "--json", *where])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["columns"] == [
        "amperity_id",
        "email",
        "loyalty_tier",
        "lifetime_revenue",
    ]
    ran = cli.invoke(app, ["orchestration", "run", "Tiers", "--json", *where])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout)
    assert result["orchestration"] == "Tiers" and result["status"] == "succeeded"
    (sent,) = (tmp_path / "out").glob("*.json")
    assert len(json.loads(sent.read_text())) == result["sent"] == result["counts"]["rows"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: orchestration\nname: Wipe\ndestination: drop\nquery: drop table customer_360\n"
    )
    refused = cli.invoke(app, ["apply", "-f", str(bad), *where])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {bad}:4: query: refused DROP: only a query may run"
    ]
    status = cli.invoke(app, ["status", "--kind", "orchestration", "--json", *where])
    assert [(s["name"], s["status"]) for s in json.loads(status.stdout)] == [("Tiers", "completed")]
    missing = cli.invoke(app, ["orchestration", "run", "Nope", *where])
    assert missing.exit_code == 1
    assert missing.stderr == "error: orchestration 'Nope' does not exist; apply it first\n"


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("select amperity_id from read_csv('/etc/passwd')", "read_csv"),
        ("select amperity_id from customer_360 where setseed(0.5) is null", "setseed"),
    ],
)
def test_a_sql_segment_may_not_read_files_nor_change_state_either(
    fresh_workspace: Workspace, sql: str, named: str
) -> None:
    segment = {"kind": "segment", "name": "From a file", "sql": sql}
    with pytest.raises(UnsafeQuery, match=named) as refused:
        apply(fresh_workspace, segment)
    assert refused.value.field == "sql"


@pytest.mark.parametrize("sample_workspace", ENGINES, indirect=True)
@pytest.mark.parametrize(
    "sql",
    [
        "select cast(amperity_id as integer) as amperity_id from customer_360",
        "select lifetime_order_count as amperity_id from customer_360",
        "select amperity_id from customer_360 limit 99999999999999999999",
        "select amperity_id from customer_360 offset 99999999999999999999",
    ],
)
def test_a_sql_segment_whose_ids_can_never_match_is_refused_when_applied(
    sample_workspace: Workspace, sql: str
) -> None:
    """The query alone plans; used as the segment is (the customer id IN it), it does not."""
    ws, name = sample_workspace, f"Never {uuid.uuid4().hex[:6]}"
    with pytest.raises(InvalidValue) as refused:
        apply(ws, {"kind": "segment", "name": name, "sql": sql})
    assert refused.value.field == "sql"
    assert ws.store.definition("segment", name) is None


@pytest.mark.parametrize("sample_workspace", ENGINES, indirect=True)
def test_a_preview_that_fails_on_a_customers_value_does_not_show_it(
    sample_workspace: Workspace, tmp_path: Path
) -> None:
    ws, name = sample_workspace, f"Cast {uuid.uuid4().hex[:6]}"
    query = "select cast(amperity_id as integer) as n from customer_360"
    apply(ws, folder(tmp_path / "out"), orchestration(name, query))
    with pytest.raises(EngineError) as failed:
        ws.orchestration_preview(name)
    ids = ws.engine.rows(exp.maybe_parse("select amperity_id from customer_360"))
    assert not any(row["amperity_id"] in str(failed.value) for row in ids)
    assert "…" in str(failed.value)


def test_orchestrations_are_exported_and_applied_back_unchanged(
    fresh_workspace: Workspace, tmp_path: Path, sample_database: Path
) -> None:
    ws = fresh_workspace
    schedule = {"recurring": {"every": "day", "at": "06:00", "timezone": "Europe/London"}}
    apply(
        ws,
        folder(tmp_path / "out"),
        orchestration(
            "Nightly", schedule=schedule, file={"split_rows": 100}, incremental_by="email"
        ),
        orchestration("By hand"),
    )
    exported = ws.export()
    assert "kind: orchestration" in exported and "split_rows: 100" in exported
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(sample_database, again / "customer360.duckdb")
    with make_workspace(again, "duckdb") as other:
        other.apply_documents(load_text(exported, "exported.yaml"))
        assert other.export() == exported


def test_an_orchestration_runs_after_each_successful_run_of_a_campaign(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    gold = {"attribute": "loyalty_tier", "op": "=", "value": "gold"}
    daily = {"recurring": {"every": "day", "at": "06:00", "timezone": "UTC"}}
    apply(
        ws,
        {**folder(tmp_path / "out"), "default_attributes": ["amperity_id", "email"]},
        {"kind": "segment", "name": "Gold", "where": gold},
        {
            "kind": "campaign",
            "name": "Gold offer",
            "audience": {"include": ["Gold"]},
            "treatments": [{"name": "Offer", "percent": 100, "destinations": ["drop"]}],
            "schedule": daily,
        },
        orchestration(
            "Sent report",
            "select loyalty_tier, count(*) as customers from customer_360 group by 1",
            schedule={"after": {"campaign": "Gold offer"}},
        ),
    )
    ws.activations.schedule("campaign", "Gold offer")
    ws.activations.schedule("orchestration", "Sent report")
    status = ws.activations.status_of("orchestration", "Sent report")
    assert status.schedule == "after each successful run of campaign 'Gold offer'"
    assert status.next_due is None
    worker = Worker(ws, name="w")
    ran: list[tuple[str, Any]] = []
    for day in (1, 2):
        ws.clock = lambda day=day: NOW.replace(hour=6, minute=1) + timedelta(days=day)
        for _ in range(3):  # the campaign's run, then the orchestration it makes due, then none
            ran += [(r.activation_name, r.scheduled_for) for r in worker.tick()]
    due = [NOW.replace(hour=6, minute=0) + timedelta(days=d) for d in (1, 2)]
    assert ran == [
        ("Gold offer", due[0]),
        ("Sent report", due[0]),
        ("Gold offer", due[1]),
        ("Sent report", due[1]),
    ]
    (last,) = [r for r in ws.runs("Sent report") if r.scheduled_for == due[1]]
    assert last.status == "succeeded" and last.counts["rows"] == 4  # the four tiers
    # It stays on for the campaign's next runs: scheduled, not completed.
    assert ws.activations.status_of("orchestration", "Sent report").status == "scheduled"


def test_after_names_an_activation_that_exists_and_not_itself(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    with pytest.raises(ScheduleError, match="cannot run after itself"):
        apply(
            ws,
            folder(tmp_path / "out"),
            orchestration("Loop", schedule={"after": {"orchestration": "Loop"}}),
        )
    with pytest.raises(ScheduleError, match="after another activation is for orchestrations"):
        validate_data(
            {
                "kind": "campaign",
                "name": "C",
                "audience": {"include": ["Gold"]},
                "treatments": [{"name": "T", "percent": 100, "destinations": ["drop"]}],
                "schedule": {"after": {"orchestration": "X"}},
            }
        )
    apply(
        ws,
        folder(tmp_path / "out"),
        orchestration("Orphan", schedule={"after": {"campaign": "Nobody"}}),
    )
    with pytest.raises(StateError, match="runs after campaign 'Nobody', which does not exist"):
        ws.activations.schedule("orchestration", "Orphan")


@pytest.mark.parametrize("packaging", ["split_size", "tgz bundle"])
def test_a_cli_run_split_by_size_or_bundled_sends_every_row_once(
    packaging: str, fresh_workspace: Workspace, tmp_path: Path
) -> None:
    import gzip
    import io
    import tarfile

    ws = fresh_workspace
    file: dict[str, Any] = (
        {"split_size": "15KB", "compression": "gzip", "manifest": True, "success_file": True}
        if packaging == "split_size"
        else {"split_rows": 100, "compression": "tgz", "manifest": True}
    )
    query = f"{EXTRACT} order by amperity_id"
    apply(ws, folder(tmp_path / "out", **file), orchestration("Loyalty extract", query))
    expected = ws.engine.rows(exp.maybe_parse(query, dialect=ws.engine.dialect))
    ws.close()
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    ran = CliRunner().invoke(
        app, ["orchestration", "run", "Loyalty extract", "--json", "-w", str(ws.directory)]
    )
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout)
    (manifest,) = (tmp_path / "out").glob("*.manifest.json")
    listed = json.loads(manifest.read_text())
    texts: list[bytes] = []
    for entry in listed["files"]:
        data = (tmp_path / "out" / entry["name"]).read_bytes()
        assert len(data) == entry["bytes"]
        if packaging == "split_size":
            texts.append(gzip.decompress(data))
            assert len(texts[-1]) <= 15_000
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as bundle:
                members = bundle.getmembers()
                texts += [bundle.extractfile(m).read() for m in members]  # type: ignore[union-attr]
    rows = [row for text in texts for row in csv.DictReader(io.StringIO(text.decode()))]
    assert len(texts) == (-(-len(expected) // 100) if packaging == "tgz bundle" else len(texts))
    assert len(texts) > 2
    assert rows == [{k: as_text(v) for k, v in row.items()} for row in expected]
    assert result["sent"] == listed["rows"] == len(expected)
    assert result["counts"]["files"] == len(listed["files"])


def test_parts_published_before_a_failure_are_on_the_run_record(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    """Each part is recorded as it is published: a run that fails at its third part shows the
    two it delivered (an operator must see what is at the destination)."""
    ws = fresh_workspace
    out = tmp_path / "out"
    apply(ws, folder(out, filename="{{ activation_name }}", split_rows=100), orchestration("Parts"))
    first = ws.run_now("orchestration", "Parts", now=NOW)
    assert first.status == "succeeded", first.error
    parts = sorted(d.uri for d in first.deliveries if d.role == "data")
    assert len(parts) >= 3
    for uri in parts[:2]:
        Path(uri.removeprefix("file://")).unlink()  # the third is the first run's: not ours
    second = ws.run_now("orchestration", "Parts", now=NOW + timedelta(minutes=1))
    assert second.status == "failed" and "not written by this run" in (second.error or "")
    recorded = [d for d in second.deliveries if d.role == "data"]
    assert sorted(d.uri for d in recorded) == parts[:2]
    assert [d.rows for d in recorded] == [100, 100]
    assert (second.counts, second.sent) == ({"rows": 200, "files": 2}, 200)  # as delivered
    assert all(Path(d.uri.removeprefix("file://")).is_file() for d in recorded)


def test_an_hourly_orchestration_into_daily_file_names_is_refused_naming_the_real_file(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    daily_name = folder(tmp_path, filename="{{ activation_name }}_{{ group_name }}")
    hourly = {"recurring": {"cron": "0 * * * *", "timezone": "UTC"}}
    with pytest.raises(FileNameCollision, match=r"would both write 'Hourly_all\.csv'"):
        apply(fresh_workspace, daily_name, orchestration("Hourly", schedule=hourly))


@pytest.mark.parametrize(
    "query",
    [
        "select amperity_id, email, amperity_id from customer_360",
        "select c.amperity_id, o.amperity_id from customer_360 c join unified_transactions o "
        "on c.amperity_id = o.amperity_id",
        "select email as id, amperity_id as ID from customer_360",
    ],
)
def test_a_query_naming_a_column_twice_is_refused_when_applied(
    fresh_workspace: Workspace, tmp_path: Path, query: str
) -> None:
    """DuckDB would rename the second (`amperity_id_1`) and the file carry a name nobody
    wrote: the query is refused, naming the column."""
    with pytest.raises(UnsafeQuery, match="more than once; give each column its own name"):
        apply(fresh_workspace, folder(tmp_path), orchestration("Twice", query))


def test_an_orchestrations_bad_file_option_is_named_in_plain_words(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(InvalidValue) as refused:
        apply(fresh_workspace, folder(tmp_path), orchestration("Odd", file={"escape": "ab"}))
    assert refused.value.field == "file.escape"
    assert str(refused.value).endswith("one character, other than a double quote or a line break")
    assert "Value error" not in str(refused.value) and "type=" not in str(refused.value)


@pytest.mark.parametrize("again", ["retry", "run for the same time"])
def test_a_retry_sends_the_rest_of_a_runs_files_with_the_version_that_began_them(
    fresh_workspace: Workspace, tmp_path: Path, again: str
) -> None:
    """A run failed after publishing two parts; the orchestration was edited since. Its retry
    sends the other parts with the version the first two were made by: one run's files never
    mix two versions."""
    ws = fresh_workspace
    out = tmp_path / "out"
    apply(ws, folder(out, filename="{{ activation_name }}", split_rows=100), orchestration("Parts"))
    first = ws.run_now("orchestration", "Parts", now=NOW)
    parts = sorted(d.uri for d in first.deliveries if d.role == "data")
    for uri in parts[:2]:
        Path(uri.removeprefix("file://")).unlink()
    failed = ws.run_now("orchestration", "Parts", now=NOW + timedelta(minutes=1))
    assert failed.status == "failed" and failed.version == 1
    apply(ws, orchestration("Parts", EXTRACT.replace("email,", "email, given_name,")))
    for uri in parts[2:]:
        Path(uri.removeprefix("file://")).unlink()  # the first run's: out of the retry's way
    if again == "retry":
        retried = ws.activations.retry(failed.id)
    else:  # the same due time sent again by hand
        retried = ws.run_now("orchestration", "Parts", now=NOW + timedelta(minutes=1))
    assert (retried.id, retried.status, retried.version) == (failed.id, "succeeded", 1)
    written = [d for d in retried.deliveries if d.role == "data"]
    assert len(written) == len(parts)
    for delivery in written:
        rows = read_csv(Path(delivery.uri.removeprefix("file://")))
        assert list(rows[0]) == ["amperity_id", "email", "loyalty_tier", "lifetime_revenue"]


@pytest.mark.parametrize(
    "file", [{"pgp": {"public_key_file": "key.asc"}}, {"split_rows": 100}, {"manifest": True}]
)
def test_an_orchestrations_file_options_over_a_webhook_are_refused_when_applied(
    sample_workspace: Workspace, file: dict[str, Any]
) -> None:
    """A webhook takes records: packaging options an orchestration lays over it are refused
    as they would be on the destination itself, not silently dropped (PGP least of all)."""
    hook = {
        "kind": "destination",
        "name": "hook",
        "type": "webhook",
        "settings": {"url": "http://127.0.0.1:9/in"},
    }
    with pytest.raises(InvalidValue, match="takes records, not files") as refused:
        apply(sample_workspace, hook, orchestration("Hooked", destination="hook", file=file))
    assert refused.value.field == "file"
    assert sample_workspace.store.definition("orchestration", "Hooked") is None
