"""`audience demo` on a workspace of its own: it reruns over its own tables (`make demo` twice),
refuses customer tables in the way with one red line, and replaces them only when told."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from audience.cli.main import app
from audience.settings import load_settings

runner = CliRunner()


def audience(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_demo_runs_twice_on_one_workspace(tmp_path: Path) -> None:
    assert audience("init", tmp_path / "shop")[0] == 0
    for _ in range(2):
        code, out, err = audience("demo", "-w", tmp_path / "shop", "--profiles", "300", "--json")
        assert code == 0, err
        assert json.loads(out)["campaign"]["run"]["status"] == "succeeded"


def test_demo_refuses_a_customer_table_unless_told_to_replace_it(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    assert audience("init", shop)[0] == 0
    with duckdb.connect(str(shop / "customer360.duckdb")) as connection:
        connection.execute("create table unified_transactions (order_id text)")
        connection.execute("insert into unified_transactions values ('real order')")
    code, out, err = audience("demo", "-w", shop, "--profiles", "300")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "unified_transactions" in err and "--replace" in err
    assert "customer_360" not in err
    with duckdb.connect(str(shop / "customer360.duckdb")) as connection:
        assert connection.execute("select * from unified_transactions").fetchall() == [
            ("real order",)
        ]
    code, _, err = audience("demo", "-w", shop, "--profiles", "300", "--replace", "--json")
    assert code == 0, err


def test_init_on_postgres_writes_a_schema_of_audiences_own(tmp_path: Path) -> None:
    url = "postgresql://127.0.0.1/test"
    assert audience("init", tmp_path / "a", "--engine", "postgres", "--database-url", url)[0] == 0
    assert load_settings(tmp_path / "a", environ={}).engine.schema_ == "audience"
    code, _, err = audience(
        "init", tmp_path / "b", "--engine", "postgres", "--database-url", url, "--schema", "crm"
    )
    assert code == 0, err
    assert load_settings(tmp_path / "b", environ={}).engine.schema_ == "crm"
