"""`load_sample` writes only where no table of the sample's names exists or an earlier demo
made it, on every engine: customer data in the way is refused by name and left untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlglot import exp

from audience.errors import DemoTablesExist
from audience.workspace import Workspace
from realservices import ENGINES, NOW, make_workspace

THEIRS = pa.table({"amperity_id": ["a real customer"], "lifetime_revenue": [1234.5]})


@pytest.fixture(params=ENGINES)
def empty_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    schema = request.getfixturevalue("own_postgres_schema") if request.param == "postgres" else None
    with make_workspace(tmp_path, request.param, schema) as ws:
        yield ws


def rows(ws: Workspace, table: str) -> list[dict[str, object]]:
    query = exp.select(exp.Star()).from_(exp.table_(table, quoted=True))
    return sorted(ws.engine.rows(query), key=str)


def profiles(ws: Workspace) -> int:
    query = exp.select(exp.Count(this=exp.Star())).from_(exp.table_("customer_360", quoted=True))
    return int(next(iter(ws.engine.rows(query)[0].values())))


def test_a_table_the_demo_did_not_make_is_refused_and_left_alone(
    empty_workspace: Workspace,
) -> None:
    ws = empty_workspace
    ws.engine.replace_table("customer_360", THEIRS.schema, THEIRS.to_batches())
    with pytest.raises(DemoTablesExist, match="customer_360") as raised:
        ws.load_sample(profiles=50, seed=1)
    assert "merged_customers" not in str(raised.value)  # only the table in the way is named
    assert rows(ws, "customer_360") == THEIRS.to_pylist()
    tables = set(ws.engine.catalog().tables)
    assert "merged_customers" not in tables and "unified_transactions" not in tables


def test_replace_replaces_a_table_the_demo_did_not_make(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    ws.engine.replace_table("customer_360", THEIRS.schema, THEIRS.to_batches())
    ws.load_sample(profiles=50, seed=1, replace=True)
    assert profiles(ws) == 50
    ws.load_sample(profiles=60, seed=1)  # now the demo's own: replaced without being asked
    assert profiles(ws) == 60


def test_the_demo_replaces_its_own_tables(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    ws.load_sample(profiles=50, seed=1)
    ws.load_sample(profiles=70, seed=2)
    assert profiles(ws) == 70
    recorded = {row["table_name"]: row for row in rows(ws, "audience_demo")}
    assert set(recorded) == {"customer_360", "merged_customers", "unified_transactions"}
    made = {(row["seed"], row["profiles"], row["created_at"]) for row in recorded.values()}
    assert made == {(2, 70, NOW.replace(tzinfo=None))}


def test_a_table_made_in_place_of_the_demo_s_is_not_taken_for_it(
    empty_workspace: Workspace,
) -> None:
    """The demo's table dropped, and one of the user's made under its name: refused."""
    ws = empty_workspace
    ws.load_sample(profiles=50, seed=1)
    ws.engine.execute(exp.Drop(tables=[exp.to_table("customer_360")], kind="TABLE"))
    ws.engine.replace_table("customer_360", THEIRS.schema, THEIRS.to_batches())
    with pytest.raises(DemoTablesExist, match="customer_360"):
        ws.load_sample(profiles=50, seed=1)
    assert rows(ws, "customer_360") == THEIRS.to_pylist()
