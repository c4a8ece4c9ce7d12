"""Property test: any tree of all/any/not over leaf conditions selects exactly the rows a
plain-Python reading of SPEC §2 selects (a condition on NULL is false; `not` of it is true)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.compile.catalog import Catalog
from audience.compile.conditions import CompileContext, condition_predicate
from audience.definitions.conditions import Condition
from audience.definitions.segment import Segment
from audience.settings import TableSettings

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
ROWS: list[dict[str, Any]] = [
    {"amperity_id": f"c{i}", "n": n, "s": s, "b": b, "d": d}
    for i, (n, s, b, d) in enumerate(
        [
            (1, "alpha", True, date(2026, 11, 23)),
            (5, "beta", False, date(2026, 11, 1)),
            (None, "gamma", None, date(2025, 1, 1)),
            (10, None, True, None),
            (-3, "", False, date(2026, 8, 24)),
            (7, "alphabet", None, date(2026, 8, 25)),
            (0, "Beta", True, date(2020, 2, 29)),
        ]
    )
]
CATALOG = Catalog(
    {"people": {"amperity_id": "string", "n": "number", "s": "string", "b": "boolean", "d": "date"}}
)
Leaf = tuple[dict[str, Any], Callable[[dict[str, Any]], bool | None]]


def _v(row: dict[str, Any], key: str, test: Callable[[Any], bool]) -> bool | None:
    value = row[key]
    return None if value is None else test(value)


LEAVES: list[Leaf] = [
    ({"attribute": "n", "op": ">", "value": 2}, lambda r: _v(r, "n", lambda v: v > 2)),
    (
        {"attribute": "n", "op": "between", "value": [0, 5]},
        lambda r: _v(r, "n", lambda v: 0 <= v <= 5),
    ),
    (
        {"attribute": "n", "op": "not_in", "value": [1, 7]},
        lambda r: _v(r, "n", lambda v: v not in (1, 7)),
    ),
    (
        {"attribute": "s", "op": "starts_with", "value": "alpha"},
        lambda r: _v(r, "s", lambda v: v.startswith("alpha")),
    ),
    ({"attribute": "s", "op": "!=", "value": "beta"}, lambda r: _v(r, "s", lambda v: v != "beta")),
    ({"attribute": "s", "op": "is_empty"}, lambda r: r["s"] is None or r["s"].strip() == ""),
    ({"attribute": "b", "op": "is_true"}, lambda r: _v(r, "b", lambda v: v is True)),
    ({"attribute": "b", "op": "is_null"}, lambda r: r["b"] is None),
    (
        {"attribute": "d", "op": "within_last", "value": 90},
        lambda r: _v(r, "d", lambda v: v >= date(2026, 8, 25)),
    ),
    ({"attribute": "d", "op": "today"}, lambda r: _v(r, "d", lambda v: v == date(2026, 11, 23))),
]


def _trees(
    depth: int,
) -> st.SearchStrategy[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]]:
    leaf = st.sampled_from(LEAVES).map(lambda pair: (pair[0], _truthy(pair[1])))
    if depth == 0:
        return leaf
    child = _trees(depth - 1)
    return st.one_of(
        leaf,
        st.lists(child, min_size=1, max_size=3).map(_group("all", all)),
        st.lists(child, min_size=1, max_size=3).map(_group("any", any)),
        child.map(lambda pair: ({"not": pair[0]}, lambda r, f=pair[1]: not f(r))),
    )


def _truthy(test: Callable[[dict[str, Any]], bool | None]) -> Callable[[dict[str, Any]], bool]:
    return lambda row: test(row) is True


def _group(key: str, combine: Callable[[Iterator[bool]], bool]) -> Callable[[list[Any]], Any]:
    def build(children: list[Any]) -> Any:
        return ({key: [c[0] for c in children]}, lambda r: combine(f(r) for _, f in children))

    return build


@pytest.fixture(scope="module")
def people() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(
        "create table people (amperity_id varchar, n integer, s varchar, b boolean, d date)"
    )
    connection.executemany(
        "insert into people values (?, ?, ?, ?, ?)",
        [[r["amperity_id"], r["n"], r["s"], r["b"], r["d"]] for r in ROWS],
    )
    yield connection
    connection.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees(3))
def test_any_tree_selects_what_the_spec_says(
    people: duckdb.DuckDBPyConnection,
    tree: tuple[dict[str, Any], Callable[[dict[str, Any]], bool]],
) -> None:
    condition, meaning = tree
    segment = Segment.model_validate({"name": "p", "where": condition})
    assert segment.where is not None
    where: Condition = segment.where
    ctx = CompileContext(CATALOG, TableSettings(profile="people"), NOW, {})
    predicate = condition_predicate(where, ctx).sql("duckdb")
    selected = {
        row[0]
        for row in people.execute(f"select amperity_id from people where {predicate}").fetchall()
    }
    assert selected == {r["amperity_id"] for r in ROWS if meaning(r)}
