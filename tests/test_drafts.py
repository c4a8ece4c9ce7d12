"""Drafts end to end: export writes what apply takes back into an empty workspace (active
versions, drafts marked as drafts, in an order that resolves); a draft-only segment used
elsewhere is named as a draft; `segment list` shows each segment's status."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audience.cli.main import app
from audience.definitions.loader import load_text, validate_data
from audience.definitions.segment import Segment
from audience.errors import DefinitionError, DraftReference
from audience.workspace import Workspace
from realservices import make_workspace


def segment(name: str, where: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"kind": "segment", "name": name, "status": status, "where": where}


def state(value: str) -> dict[str, Any]:
    return {"attribute": "state", "op": "=", "value": value}


def tier(*values: str) -> dict[str, Any]:
    return {"attribute": "loyalty_tier", "op": "in", "value": list(values)}


def uses(*names: str) -> dict[str, Any]:
    return {"all": [{"in_segment": name} for name in names]}


def destination(folder: Path) -> dict[str, Any]:
    return {
        "kind": "destination",
        "name": "local",
        "type": "filesystem",
        "settings": {"path": str(folder)},
        "default_attributes": ["amperity_id", "email"],
    }


def campaign(include: list[str], exclude: list[str] | None = None) -> dict[str, Any]:
    return {
        "kind": "campaign",
        "name": "Gold push",
        "audience": {"include": include, "exclude": exclude or []},
        "treatments": [{"name": "Offer", "percent": 100, "destinations": ["local"]}],
    }


def apply(ws: Workspace, *documents: dict[str, Any]) -> list[tuple[str, int, bool]]:
    changes = ws.apply_documents([validate_data(d, "test") for d in documents])
    return [(c.name, c.version, c.changed) for c in changes]


def state_of(ws: Workspace) -> list[tuple[str, int, str, int | None]]:
    return [(s.name, s.version, s.status, s.active_version) for s in ws.segment_summaries()]


@pytest.fixture
def second_workspace(tmp_path: Path, sample_database: Path) -> Iterator[Workspace]:
    """Another DuckDB workspace with the sample data and an empty store."""
    directory = tmp_path / "second"
    directory.mkdir()
    shutil.copy(sample_database, directory / "customer360.duckdb")
    with make_workspace(directory, "duckdb") as ws:
        yield ws


def build(ws: Workspace, folder: Path) -> None:
    """An active segment with a newer draft edit, a draft-only segment, an in_segment chain
    whose names sort against their order of use, a destination and a campaign."""
    apply(
        ws,
        destination(folder),
        segment("C base", state("WA")),
        segment("B mid", uses("C base")),
        segment("A top", uses("B mid")),
        segment("Gold", tier("gold")),
        campaign(["Gold"], ["A top"]),
    )
    apply(ws, segment("Gold", tier("gold", "platinum"), status="draft"))
    apply(ws, segment("Idea", state("OR"), status="draft"))


def test_an_export_applies_into_an_empty_workspace_and_exports_the_same(
    fresh_workspace: Workspace, second_workspace: Workspace, tmp_path: Path
) -> None:
    build(fresh_workspace, tmp_path / "out")
    exported = fresh_workspace.export()
    documents = load_text(exported, "export.yaml")
    assert [(d.definition.kind, d.definition.name) for d in documents] == [
        ("destination", "local"),
        ("segment", "C base"),
        ("segment", "B mid"),
        ("segment", "A top"),
        ("segment", "Gold"),
        ("segment", "Gold"),
        ("segment", "Idea"),
        ("campaign", "Gold push"),
    ]
    gold = [d.definition for d in documents if isinstance(d.definition, Segment)][3:5]
    assert [(g.name, g.status) for g in gold] == [("Gold", "active"), ("Gold", "draft")]

    changes = second_workspace.apply_documents(documents)
    assert all(change.changed for change in changes)
    assert second_workspace.export() == exported
    assert (
        state_of(second_workspace)
        == state_of(fresh_workspace)
        == [
            ("A top", 1, "active", 1),
            ("B mid", 1, "active", 1),
            ("C base", 1, "active", 1),
            ("Gold", 2, "draft", 1),
            ("Idea", 1, "draft", None),
        ]
    )
    # the campaign still uses Gold's active version in the new workspace
    assert second_workspace.segments()["Gold"] == fresh_workspace.segments()["Gold"]
    # applied again where it came from, nothing changes
    again = fresh_workspace.apply_documents(load_text(exported, "export.yaml"))
    assert not any(change.changed for change in again)
    assert state_of(fresh_workspace)[3] == ("Gold", 2, "draft", 1)


def test_an_export_in_order_applies_one_document_at_a_time(
    fresh_workspace: Workspace, second_workspace: Workspace, tmp_path: Path
) -> None:
    build(fresh_workspace, tmp_path / "out")
    for document in load_text(fresh_workspace.export(), "export.yaml"):
        second_workspace.apply_documents([document])
    assert state_of(second_workspace) == state_of(fresh_workspace)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("active", "active"),
        ("draft", "draft"),
        ("draft", "active"),  # a draft cannot come before the active version it edits
    ],
)
def test_a_segment_twice_is_refused_unless_active_then_draft(
    fresh_workspace: Workspace, first: str, second: str
) -> None:
    with pytest.raises(DefinitionError, match="defined twice"):
        apply(
            fresh_workspace,
            segment("Gold", tier("gold"), status=first),
            segment("Gold", tier("gold", "platinum"), status=second),
        )
    assert fresh_workspace.segment_summaries() == []


def test_a_segment_three_times_is_refused(fresh_workspace: Workspace) -> None:
    with pytest.raises(DefinitionError, match="defined twice"):
        apply(
            fresh_workspace,
            segment("Gold", tier("gold")),
            segment("Gold", tier("gold", "platinum"), status="draft"),
            segment("Gold", tier("platinum"), status="draft"),
        )


def test_a_changed_active_version_before_its_draft_saves_both(
    fresh_workspace: Workspace,
) -> None:
    apply(fresh_workspace, segment("Gold", tier("gold")))
    changes = apply(
        fresh_workspace,
        segment("Gold", tier("platinum")),
        segment("Gold", tier("gold", "platinum"), status="draft"),
    )
    assert changes == [("Gold", 2, True), ("Gold", 3, True)]
    active = Segment.model_validate(segment("Gold", tier("platinum")))
    assert fresh_workspace.segments()["Gold"] == active


@pytest.mark.parametrize(
    ("documents", "field"),
    [
        ([campaign(["Idea"])], "audience.include.0"),
        ([segment("Gold", tier("gold")), campaign(["Gold"], ["Idea"])], "audience.exclude.0"),
        ([segment("Uses idea", uses("Idea"))], "where.all.0.in_segment"),
    ],
)
def test_using_a_draft_only_segment_says_it_is_a_draft(
    fresh_workspace: Workspace, tmp_path: Path, documents: list[dict[str, Any]], field: str
) -> None:
    apply(fresh_workspace, destination(tmp_path), segment("Idea", state("OR"), status="draft"))
    with pytest.raises(DraftReference) as raised:
        apply(fresh_workspace, *documents)
    assert raised.value.field == field
    assert "segment 'Idea' is a draft; activate it (status: active) first" in str(raised.value)


def test_a_draft_in_the_same_batch_is_named_as_a_draft(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(DraftReference, match="'Idea' is a draft"):
        apply(
            fresh_workspace,
            destination(tmp_path),
            segment("Idea", state("OR"), status="draft"),
            campaign(["Idea"]),
        )


def test_segment_list_shows_each_status(tmp_path: Path, sample_database: Path) -> None:
    runner = CliRunner()
    shop = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(shop)]).exit_code == 0
    shutil.copy(sample_database, shop / "customer360.duckdb")
    with Workspace.open(shop) as ws:
        build(ws, tmp_path / "out")
    listed = runner.invoke(app, ["segment", "list", "-w", str(shop), "--json"])
    assert listed.exit_code == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert (rows["Gold"]["status"], rows["Gold"]["version"], rows["Gold"]["active_version"]) == (
        "draft",
        2,
        1,
    )
    assert (rows["Idea"]["status"], rows["Idea"]["active_version"]) == ("draft", None)
    assert rows["C base"]["status"] == "active"
    table = runner.invoke(app, ["segment", "list", "-w", str(shop)], terminal_width=200)
    assert table.exit_code == 0
    gold_line = next(line for line in table.stdout.splitlines() if "Gold" in line)
    assert "draft" in gold_line
