"""Segment overlap (`audience segment overlap`): each pair's common customers equal the
intersection of the segments' members fetched one by one, on every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from audience.cli.main import app
from audience.compile.conditions import segment_predicate
from audience.definitions.loader import load_text
from audience.errors import InvalidValue, NotFound
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace

SEGMENTS = """\
kind: segment
name: Gold
where: {attribute: loyalty_tier, op: "=", value: gold}
---
kind: segment
name: Big spenders
where: {attribute: lifetime_revenue, op: ">", value: 400}
---
kind: segment
name: Washington
where: {attribute: state, op: "=", value: WA}
"""
NAMES = ["Gold", "Big spenders", "Washington"]


def members(ws: Workspace, name: str) -> set[str]:
    segment, _ = ws.segment(name)
    query = exp.select(exp.column("amperity_id", quoted=True)).from_(
        exp.table_("customer_360", quoted=True)
    )
    rows = ws.engine.rows(query.where(segment_predicate(segment, ws.compile_context())))
    return {str(r["amperity_id"]) for r in rows}


def test_pairs_are_the_intersections_of_the_members(sample_workspace: Workspace) -> None:
    ws = sample_workspace
    ws.apply_documents(load_text(SEGMENTS, "overlap.yaml"))
    found = ws.segment_overlap(NAMES)
    sets = {name: members(ws, name) for name in NAMES}
    assert found.customers == {name: len(sets[name]) for name in NAMES}
    assert [(p.first, p.second) for p in found.pairs] == [
        ("Gold", "Big spenders"),
        ("Gold", "Washington"),
        ("Big spenders", "Washington"),
    ]
    for pair in found.pairs:
        both = sets[pair.first] & sets[pair.second]
        assert pair.both == len(both) > 0
        assert pair.share_of_first == round(len(both) / len(sets[pair.first]), 4)
        assert pair.share_of_second == round(len(both) / len(sets[pair.second]), 4)


def test_overlap_takes_two_to_five_different_known_segments(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    ws.apply_documents(load_text(SEGMENTS, "overlap.yaml"))
    for names in (["Gold"], ["Gold", "Gold"], ["Gold", *NAMES, "Washington", "Big spenders"]):
        with pytest.raises(InvalidValue, match="2 to 5 different segments"):
            ws.segment_overlap(names)
    with pytest.raises(NotFound):
        ws.segment_overlap(["Gold", "Nope"])


def test_the_cli_prints_pairs_and_json(fresh_workspace: Workspace) -> None:
    directory: Path = fresh_workspace.directory
    (directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    fresh_workspace.apply_documents(load_text(SEGMENTS, "overlap.yaml"))
    runner = CliRunner()
    done = runner.invoke(app, ["segment", "overlap", *NAMES[:2], "-w", str(directory), "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert [s["segment"] for s in data["segments"]] == NAMES[:2]
    assert data["pairs"][0]["both"] == fresh_workspace.segment_overlap(NAMES[:2]).pairs[0].both
    table = runner.invoke(app, ["segment", "overlap", *NAMES, "-w", str(directory)])
    assert table.exit_code == 0 and "Washington" in table.stdout
    alone = runner.invoke(app, ["segment", "overlap", "Gold", "-w", str(directory)])
    assert alone.exit_code == 1 and "2 to 5 different segments" in alone.output


def test_a_share_of_an_empty_segment_is_no_number(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    nobody = "kind: segment\nname: Nobody\nwhere: {attribute: state, op: '=', value: Atlantis}\n"
    ws.apply_documents(load_text(SEGMENTS + "---\n" + nobody, "overlap.yaml"))
    (pair,) = ws.segment_overlap(["Nobody", "Gold"]).pairs
    assert (pair.both, pair.share_of_first, pair.share_of_second) == (0, None, 0.0)
