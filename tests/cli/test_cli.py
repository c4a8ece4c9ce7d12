"""The `audience` command end to end on a real workspace: output, JSON shapes, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from audience.cli.main import app
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace

INSIGHT_KEYS = {
    "customers",
    "customers_share",
    "active_customers",
    "revenue_1y",
    "revenue_1y_share",
    "reachable_email",
    "reachable_sms",
    "reachable_mail",
    "revenue_per_customer",
    "orders_per_customer",
    "average_order_value",
    "computed_at",
}
runner = CliRunner()


def audience(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "shop"
    code, out, _ = audience("init", directory)
    assert code == 0 and "audience.toml" in out
    code, out, err = audience("demo", "-w", directory, "--profiles", "2000", "--json")
    assert code == 0, err
    demo = json.loads(out)
    assert demo["profiles"] == 2000
    assert len(demo["segments"]) == 5
    return directory


def test_insights_json_has_the_public_keys(workspace: Path) -> None:
    code, out, _ = audience(
        "segment",
        "insights",
        "Reachable loyalists",
        "-w",
        workspace,
        "--json",
        "--now",
        "2026-11-23",
    )
    assert code == 0
    figures = json.loads(out)
    assert set(figures) >= INSIGHT_KEYS
    assert 0 < figures["customers"] <= 2000
    assert figures["reachable_email"] == figures["customers"]  # the segment requires it
    assert figures["computed_at"] == "2026-11-23T00:00:00+00:00"


def test_insights_breakdown_and_history(workspace: Path) -> None:
    code, out, _ = audience(
        "segment", "insights", "Lapsed customers", "-w", workspace, "--by", "loyalty_tier", "--json"
    )
    assert code == 0
    figures = json.loads(out)
    assert {row["value"] for row in figures["breakdown"]} <= {"none", "silver", "gold", "platinum"}
    assert sum(row["customers"] for row in figures["breakdown"]) == figures["customers"]
    code, out, _ = audience("segment", "history", "Lapsed customers", "-w", workspace, "--json")
    history = json.loads(out)
    assert len(history) >= 2  # the demo's refresh and this one
    assert history[-1]["customers"] == figures["customers"]


def test_rich_output_preview_and_sql(workspace: Path) -> None:
    code, out, _ = audience("segment", "insights", "Recent complainers", "-w", workspace)
    assert code == 0 and "reachable by email" in out
    code, out, _ = audience(
        "segment", "preview", "Recent complainers", "-w", workspace, "--limit", "3", "--json"
    )
    assert code == 0 and len(json.loads(out)) == 3
    code, out, _ = audience(
        "segment", "sql", "Lapsed customers", "-w", workspace, "--dialect", "postgres"
    )
    assert code == 0 and out.startswith("SELECT") and '"customer_360"' in out
    code, shown, _ = audience("segment", "sql", "Lapsed customers", "-w", workspace, "--json")
    assert code == 0 and json.loads(shown)["segment"] == "Lapsed customers"
    assert json.loads(shown)["sql"].startswith("SELECT")
    code, out, _ = audience("segment", "list", "-w", workspace, "--json")
    assert {row["name"] for row in json.loads(out)} >= {"Lapsed customers", "Recent complainers"}


def test_export_is_accepted_unchanged(workspace: Path, tmp_path: Path) -> None:
    exported = tmp_path / "all.yaml"
    assert audience("export", "-w", workspace, "-o", exported)[0] == 0
    code, out, _ = audience("apply", "-w", workspace, "-f", exported, "--json")
    assert code == 0
    assert all(not change["changed"] for change in json.loads(out))


def test_apply_saves_a_new_version_only_when_changed(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "kind: segment\nname: Gold\nwhere: {attribute: loyalty_tier, op: '=', value: gold}\n"
    )
    first = json.loads(audience("apply", "-w", workspace, "-f", path, "--json")[1])
    again = json.loads(audience("apply", "-w", workspace, "-f", path, "--json")[1])
    path.write_text(
        "kind: segment\nname: Gold\nwhere: {attribute: loyalty_tier, op: in, value: [gold]}\n"
    )
    changed = json.loads(audience("apply", "-w", workspace, "-f", path, "--json")[1])
    assert [c["version"] for c in (first[0], again[0], changed[0])] == [1, 1, 2]


def test_a_name_typed_with_a_combining_accent_finds_the_definition(
    workspace: Path, tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "kind: segment\nname: \u00c9lite\nwhere: {attribute: loyalty_tier, op: '=', value: gold}\n"
    )
    assert audience("apply", "-w", workspace, "-f", path)[0] == 0
    code, out, err = audience("segment", "insights", "E\u0301lite", "-w", workspace, "--json")
    assert code == 0, err
    assert json.loads(out)["segment"] == "\u00c9lite"


BAD_DOCUMENTS = {
    "unknown attribute": (
        "kind: segment\nname: Bad\nwhere:\n  all:\n"
        "    - {attribute: lifetime_revnue, op: '>', value: 1}\n",
        "bad.yaml:5: where.all.0.attribute: unknown attribute 'lifetime_revnue'",
    ),
    "wrong type": (
        "kind: segment\nname: Bad\nwhere: {attribute: lifetime_revenue, op: contains, value: x}\n",
        "bad.yaml:3: where.op: operator 'contains' does not apply",
    ),
    "missing segment": (
        "kind: segment\nname: Bad\nwhere: {in_segment: Nobody}\n",
        "bad.yaml:3: where.in_segment: segment 'Nobody' does not exist",
    ),
    "cycle": (
        "kind: segment\nname: Ping\nwhere: {in_segment: Pong}\n---\n"
        "kind: segment\nname: Pong\nwhere: {in_segment: Ping}\n",
        "bad.yaml:3: where: segments refer to each other in a loop: Ping → Pong → Ping",
    ),
    "invalid yaml": ("kind: segment\nname: [\n", "bad.yaml:3: not valid YAML"),
    "no kind": ("name: Bad\nsql: select 1\n", "bad.yaml:1: document has no `kind`"),
    "sql naming a missing table": (
        "kind: segment\nname: Bad\nsql: select amperity_id from no_such_table\n",
        "bad.yaml:3: sql: refused 'no_such_table': it is not a table of the customer database",
    ),
    "sql the engine rejects": (
        "kind: segment\nname: Bad\nsql: select no_such_column from customer_360\n",
        "bad.yaml:3: sql: the engine rejected the query",
    ),
    "sql reading a file": (
        "kind: segment\nname: Bad\nsql: select amperity_id from read_csv('/etc/passwd')\n",
        "bad.yaml:3: sql: refused the table function read_csv()",
    ),
    "defined twice": (
        "kind: segment\nname: Twice\nsql: select 1\n---\n"
        "kind: segment\nname: Twice\nsql: select 2\n",
        "bad.yaml:6: name: segment 'Twice' is defined twice",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DOCUMENTS))
def test_bad_input_is_one_red_line_and_nothing_is_saved(
    case: str, workspace: Path, tmp_path: Path
) -> None:
    text, expected = BAD_DOCUMENTS[case]
    good = tmp_path / "good.yaml"
    good.write_text(
        f"kind: segment\nname: Fine {case}\nsql: select amperity_id from customer_360\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out, err = audience("apply", "-w", workspace, "-f", good, "-f", bad)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0].replace(str(tmp_path) + "/", "")
    assert "Traceback" not in out + err
    listed = json.loads(audience("segment", "list", "-w", workspace, "--json")[1])
    assert f"Fine {case}" not in {row["name"] for row in listed}  # nothing half-applied


def test_usage_errors_exit_2_and_missing_workspace_exits_1(tmp_path: Path) -> None:
    assert audience("segment", "insights")[0] == 2
    assert audience("segment", "sql", "x", "--dialect", "oracle", "-w", tmp_path)[0] == 2
    code, _, err = audience("segment", "list", "-w", tmp_path / "nowhere")
    assert code == 1 and "not an Audience workspace" in err
    code, _, err = audience("segment", "insights", "Nobody", "-w", tmp_path)
    assert code == 1


def test_the_same_workspace_on_postgres_gives_the_same_answers(
    tmp_path: Path, own_postgres_schema: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {}
    for engine in ("duckdb", "postgres"):
        directory = tmp_path / engine
        if engine == "postgres":
            code, _, err = audience(
                "init", directory, "--engine", engine, "--database-url", postgres_url
            )
            # keep this test's tables and metadata in the session's own schema
            monkeypatch.setenv("AUDIENCE__ENGINE__SCHEMA", own_postgres_schema)
            monkeypatch.setenv(
                "AUDIENCE__STORE__URL",
                f"{postgres_url}?options=-csearch_path%3D{own_postgres_schema}",
            )
        else:
            code, _, err = audience("init", directory)
        assert code == 0, err
        code, out, err = audience(
            "demo", "-w", directory, "--profiles", "1500", "--seed", "3", "--json"
        )
        assert code == 0, err
        code, out, err = audience(
            "segment",
            "insights",
            "Valuable or complaining",
            "-w",
            directory,
            "--json",
            "--by",
            "state",
            "--now",
            "2026-11-23T12:00:00",
        )
        assert code == 0, err
        answers[engine] = json.loads(out)
    assert answers["duckdb"]["customers"] > 0
    assert answers["duckdb"] == answers["postgres"]


def test_sql_sqlglot_cannot_parse_is_refused_in_one_line_without_its_warning(
    tmp_path: Path,
) -> None:
    """sqlglot logs a warning when it falls back on unparsed SQL; the CLI shows only its own."""
    (tmp_path / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    (tmp_path / "o.yaml").write_text(
        "kind: destination\nname: out\ntype: filesystem\nsettings: {path: out}\n"
        "file: {format: csv}\n---\n"
        "kind: orchestration\nname: Probe\nquery: call pragma_version()\ndestination: out\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from audience.cli.main import main; main()",
            "apply",
            "-f",
            str(tmp_path / "o.yaml"),
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'o.yaml'}:9: query: refused CALL: only a query may run"
    ]


STEP_KEYS = {"node", "event", "at", "path", "is_control", "reason", "run_id"}
GOAL_KEYS = {
    "goal",
    "path",
    "is_control",
    "customers",
    "reached",
    "conversion",
    "lift_over_control",
    "versus_control",
}
RUN_KEYS = {
    "run_id",
    "activation",
    "kind",
    "version",
    "scheduled_for",
    "started_at",
    "ended_at",
    "status",
    "test",
    "attempt",
    "trigger",
    "counts",
    "error",
    "error_kind",
    "retries",
    "next_attempt_at",
    "deliveries",
    "sent",
    "control",
}
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
EXTRACT = """\
kind: destination
name: files
type: filesystem
settings: {path: files}
---
kind: orchestration
name: Extract
query: select amperity_id, created_at, lifetime_revenue from customer_360
destination: files
"""


def _json(*args: str | Path) -> Any:
    code, out, err = audience(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_json_answers_keep_their_keys(workspace: Path, tmp_path: Path) -> None:
    """Scripts read these keys; the API answers the same models (tests/server)."""
    shop = tmp_path / "shop"
    shutil.copytree(workspace, shop)
    status = _json("journey", "status", "Welcome series", "-w", shop)
    assert set(status) >= {"journey", "in_journey", "nodes", "exited", "finished", "released"}
    assert set(status["nodes"][0]) >= {"node", "type", "now", "entered"}
    assert all(set(goal) >= GOAL_KEYS for goal in status["goals"]) and status["goals"]
    (shop / "extract.yaml").write_text(EXTRACT)
    assert audience("apply", "-w", shop, "-f", shop / "extract.yaml")[0] == 0
    with Workspace.open(shop) as ws:
        log = exp.maybe_parse("select min(customer_id) as id from audience_journey_log")
        customer = ws.engine.rows(log)[0]["id"]
        queued = ws.activations.queue_now("orchestration", "Extract").id
    steps = _json("journey", "path", "Welcome series", customer, "-w", shop)
    assert steps and all(set(step) == STEP_KEYS for step in steps)
    assert ISO_TIME.match(steps[0]["at"])
    preview = _json("orchestration", "preview", "Extract", "--rows", "2", "-w", shop)
    assert set(preview) >= {"columns", "rows", "high_water_mark", "total"}
    assert preview["columns"] == ["amperity_id", "created_at", "lifetime_revenue"]
    assert [list(row) for row in preview["rows"]] == [preview["columns"]] * 2
    assert ISO_TIME.match(preview["rows"][0]["created_at"])
    (refresh, *_) = _json("segment", "history", "Lapsed customers", "-w", shop)
    assert set(refresh) >= {"version", "segment", *INSIGHT_KEYS}
    members = _json("segment", "preview", "Lapsed customers", "--limit", "2", "-w", shop)
    assert len(members) == 2 and set(members[0]) >= {"amperity_id", "email", "created_at"}
    assert ISO_TIME.match(members[0]["created_at"])  # as the API writes it
    canceled = _json("runs", "cancel", queued, "-w", shop)
    assert set(canceled) >= RUN_KEYS | {"orchestration", "leftovers_removed"}
    assert canceled["status"] == "canceled" and canceled["orchestration"] == "Extract"
    assert "campaign" not in canceled and canceled["leftovers_removed"] == 0
