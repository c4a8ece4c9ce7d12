"""`audience campaign plan|test|run` and `audience runs` through the CLI: JSON shapes, exit codes,
and names that must stay safe in file names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audience.cli.main import app
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace

NOW = "2026-11-23T15:30:00"
runner = CliRunner()


def audience(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


OFFER = "  - {name: Offer, percent: 90, destinations: [out]}"


def definitions(folder: Path, name: str, treatments: str = OFFER) -> str:
    return f"""\
kind: segment
name: Gold
where: {{attribute: loyalty_tier, op: "=", value: gold}}
---
kind: destination
name: out
type: filesystem
settings: {{path: "{folder}"}}
file: {{format: csv, compression: none}}
default_attributes: [amperity_id, email]
---
kind: campaign
name: {json.dumps(name, ensure_ascii=False)}
audience: {{include: [Gold]}}
treatments:
{treatments}
control: 10
"""


@pytest.fixture
def workspace(fresh_workspace: Workspace) -> Path:
    (fresh_workspace.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    return fresh_workspace.directory


def apply_text(workspace: Path, text: str) -> tuple[int, str, str]:
    path = workspace / "defs.yaml"
    path.write_text(text)
    return audience("apply", "-w", workspace, "-f", path)


def test_plan_run_and_runs_json(workspace: Path, tmp_path: Path) -> None:
    assert apply_text(workspace, definitions(tmp_path / "out", "Gold push"))[0] == 0
    code, out, _ = audience(
        "campaign", "plan", "Gold push", "-w", workspace, "--json", "--now", NOW
    )
    assert code == 0
    plan = json.loads(out)
    assert set(plan) >= {"campaign", "audience", "excluded", "sub_audiences"}
    (sub,) = plan["sub_audiences"]
    assert {g["name"]: g["control"] for g in sub["groups"]} == {"Offer": False, "Control": True}
    assert sum(g["customers"] for g in sub["groups"]) == sub["customers"] == plan["audience"] > 0

    code, out, _ = audience("campaign", "run", "Gold push", "-w", workspace, "--json", "--now", NOW)
    assert code == 0
    run = json.loads(out)
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["sent"] + run["control"] == plan["audience"]
    (delivery,) = run["deliveries"]
    assert set(delivery) >= {"destination", "group", "uri", "rows", "bytes", "sha256"}
    assert delivery["rows"] == run["sent"] and delivery["uri"].startswith("file://")

    code, out, _ = audience("campaign", "run", "Gold push", "-w", workspace, "--now", NOW)
    assert code == 1  # the same scheduled time again: refused, nothing sent twice

    code, out, _ = audience(
        "campaign", "test", "Gold push", "-w", workspace, "--records", "3", "--json"
    )
    assert code == 0 and json.loads(out)["test"] is True

    code, out, _ = audience("runs", "Gold push", "-w", workspace, "--json")
    listed = json.loads(out)
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]
    code, out, _ = audience("runs", "-w", workspace)
    assert code == 0 and "Gold push" in out


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "a/b\\c", "Spring 🎉 Sale", ".. ..", "x" * 199],
)
def test_unsafe_campaign_names_give_safe_file_names(
    workspace: Path, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "out"
    assert apply_text(workspace, definitions(folder, name))[0] == 0
    code, out, err = audience("campaign", "run", name, "-w", workspace, "--json", "--now", NOW)
    assert code == 0, err
    for delivery in json.loads(out)["deliveries"]:
        path = Path(delivery["uri"].removeprefix("file://"))
        assert path.parent == folder
        assert len(path.name.encode()) <= 255
        assert "/" not in path.name and ".." not in path.name
    files = [p for p in folder.rglob("*") if p.is_file() and ".audience" not in p.parts]
    assert files and all(p.parent == folder for p in files)


@pytest.mark.parametrize(
    ("name", "message"),
    [("x" * 300, "longer than 200"), ("tab\there", "control characters")],
)
def test_names_too_long_or_with_control_characters_are_refused(
    workspace: Path, tmp_path: Path, name: str, message: str
) -> None:
    code, _, err = apply_text(workspace, definitions(tmp_path / "out", name))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def treatment(name: str, percent: str) -> str:
    return f"  - {{name: {name}, percent: {percent}, destinations: [out]}}"


@pytest.mark.parametrize(
    ("treatments", "message"),
    [
        ([treatment("A", "50")], "total 60"),
        ([treatment("A", "60"), treatment("B", "60")], "total 130"),
        ([treatment("A", "-10"), treatment("B", "100")], "greater than or equal to 0"),
        ([treatment(n, "33.33") for n in "ABC"], "total 109.99"),
        ([treatment("A", '"90%"')], "percent"),
        ([treatment("A", "45"), treatment("A", "45")], "unique"),
        (["  - {name: A, percent: 90, destinations: []}"], "destinations"),
        (["  - {name: A, percent: 90, destinations: [nowhere]}"], "destination 'nowhere'"),
    ],
)
def test_bad_treatments_are_one_red_line(
    workspace: Path, tmp_path: Path, treatments: list[str], message: str
) -> None:
    text = definitions(tmp_path / "out", "Split", "\n".join(treatments))
    code, _, err = apply_text(workspace, text)
    assert code == 1, err
    line = err.strip()
    assert "\n" not in line and "defs.yaml:" in line and message in line, line


def test_a_failed_runs_error_is_printed_whole_on_one_line(workspace: Path, tmp_path: Path) -> None:
    """The run's error names settings in brackets (`[tables]`): printed as written, not taken
    for markup, and not wrapped."""
    assert apply_text(workspace, definitions(tmp_path / "out", "Gold push"))[0] == 0
    settings = workspace / SETTINGS_FILE
    text = settings.read_text()
    assert 'source = "merged_customers"' in text
    settings.write_text(text.replace('source = "merged_customers"', 'source = "merged_missing"'))
    code, _, err = audience("campaign", "run", "Gold push", "-w", workspace, "--now", NOW)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "'merged_missing' does not exist" in line and "audience.toml's [tables]" in line
