"""YAML documents → models: shapes, and errors that name file:line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.definitions.loader import dump_documents, load_paths, load_text
from audience.errors import (
    DefinitionError,
    InvalidYAML,
    MissingKind,
    NestingTooDeep,
)

APPENDIX_SEGMENTS = (Path(__file__).parents[1] / "fixtures" / "appendix_segments.yaml").read_text()


def test_appendix_segments_load() -> None:
    documents = load_text(APPENDIX_SEGMENTS, "segments.yaml")
    assert [d.definition.name for d in documents] == [
        "High value, recently active",
        "Recent complainers",
        "Valuable or complaining",
    ]
    assert [d.line for d in documents] == [1, 19, 23]


def test_export_round_trips() -> None:
    definitions = [d.definition for d in load_text(APPENDIX_SEGMENTS)]
    text = dump_documents(definitions)
    assert [d.definition for d in load_text(text)] == definitions
    assert text.startswith("kind: segment\n")


@pytest.mark.parametrize(
    ("text", "error", "where", "fragment"),
    [
        ("kind: segment\nname: x\nwhere: {all: [\n", InvalidYAML, "f.yaml:4", "not valid YAML"),
        ("name: x\nwhere: {attribute: a, op: is_null}\n", MissingKind, "f.yaml:1", "no `kind`"),
        ("kind: segmnt\nname: x\n", MissingKind, "f.yaml:1", "unknown kind 'segmnt'"),
        ("kind: segment\nname: x\nwhere:\n  all: []\n", DefinitionError, "f.yaml:4", "at least 1"),
        ("kind: segment\nname: x\nwhere:\n  any: []\n", DefinitionError, "f.yaml:4", "at least 1"),
        (
            "kind: segment\nname: x\nwhere:\n  all:\n    - {attribute: a, op: between, value: 3}\n",
            DefinitionError,
            "f.yaml:5",
            "two values",
        ),
        (
            "kind: segment\nname: x\nwhere:\n  all:\n    - {attribute: a, op: like, value: 3}\n",
            DefinitionError,
            "f.yaml:5",
            "where.all.0.op",
        ),
        (
            "kind: segment\nname: x\nwhere:\n  all:\n    - {attribute: a, op: in, value: []}\n",
            DefinitionError,
            "f.yaml:5",
            "non-empty list",
        ),
        (
            "kind: segment\nname: x\nwhere: {color: red}\n",
            DefinitionError,
            "f.yaml:3",
            "needs one of",
        ),
        ("kind: segment\nname: x\n", DefinitionError, "f.yaml:1", "needs where"),
        ("kind: segment\nname: '  '\nsql: select 1\n", DefinitionError, "f.yaml:2", "empty"),
        ('kind: segment\nname: "a\\tb"\nsql: select 1\n', DefinitionError, "f.yaml:2", "control"),
        ("- just\n- a list\n", DefinitionError, "f.yaml:1", "mapping"),
        (
            "kind: segment\nname: x\nwhere:\n  attribute: a\n  op: within_last\n  value: -3\n",
            DefinitionError,
            "f.yaml:3",
            "whole number",
        ),
        (
            "kind: segment\nname: x\nwhere: {sent: {activation: A, within_last: 7}}\n",
            DefinitionError,
            "f.yaml:3",
            "where.sent.within_last: expected a mapping ({key: value, …}), got 7",
        ),
        (
            "kind: campaign\nname: c\naudience: {include: [s]}\n"
            "treatments: [{name: A, percent: 100, destinations: [d, d]}]\n",
            DefinitionError,
            "f.yaml:4",
            "treatments.0.destinations: each destination once; listed twice: d",
        ),
    ],
)
def test_bad_documents_name_file_line_and_field(
    text: str, error: type[Exception], where: str, fragment: str
) -> None:
    with pytest.raises(error) as raised:
        load_text(text, "f.yaml")
    message = str(raised.value)
    assert message.startswith(where + ":"), message
    assert fragment in message


def test_nesting_a_thousand_deep_is_a_clear_error() -> None:
    deep = "{all: [" * 1000 + "{attribute: a, op: is_null}" + "]}" * 1000
    with pytest.raises(NestingTooDeep) as raised:
        load_text(f"kind: segment\nname: deep\nwhere: {deep}\n", "deep.yaml")
    assert "deep.yaml" in str(raised.value)


def test_nesting_just_past_the_limit_is_refused_by_the_model() -> None:
    deep = "{all: [" * 60 + "{attribute: a, op: is_null}" + "]}" * 60
    with pytest.raises(NestingTooDeep) as raised:
        load_text(f"kind: segment\nname: deep\nwhere: {deep}\n", "deep.yaml")
    assert "nested more than" in str(raised.value)


def test_second_document_error_points_at_its_own_line() -> None:
    text = APPENDIX_SEGMENTS + "---\nkind: segment\nname: y\nwhere: {attribute: a, op: nope}\n"
    with pytest.raises(DefinitionError) as raised:
        load_text(text, "all.yaml")
    assert str(raised.value).startswith("all.yaml:32:")


def test_load_paths_reads_folders_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: segment\nname: B\nsql: select 1\n")
    (tmp_path / "a.yml").write_text("kind: segment\nname: A\nsql: select 1\n")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    assert [d.definition.name for d in load_paths([tmp_path])] == ["A", "B"]
    with pytest.raises(DefinitionError, match="no such file"):
        load_paths([tmp_path / "missing.yaml"])


def test_aliases_of_aliases_are_refused_before_they_expand() -> None:
    """ "Billion laughs": a few lines that would expand to gigabytes."""
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefg", "bcdefgh", strict=True)
    ]
    text = "kind: segment\nname: lol\n" + "\n".join(levels) + "\n"
    with pytest.raises(InvalidYAML, match="expands to more than"):
        load_text(text, "laughs.yaml")
