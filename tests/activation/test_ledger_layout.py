"""The engine-side ledger names the activation by kind and name and records its layout's
version; a ledger of the first layout (a `campaign` column) is migrated in place, rows kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlglot import exp

from audience.activation import ledger
from audience.engines.base import Engine
from audience.engines.duckdb import DuckDBEngine
from audience.engines.postgres import PostgresEngine
from realservices import POSTGRES_URL, new_postgres_schema

FIRST_LAYOUT = (
    "create table audience_recipients (customer_id text, campaign text, sub_audience text, "
    "treatment text, is_control boolean, destination text, run_id text, delivered_at timestamp)",
    "create table audience_campaign_members (campaign text, customer_id text, run_id text)",
    "insert into audience_recipients values ('c1', 'Spring', 'All', 'A', false, 'out', 'r1', "
    "timestamp '2026-11-01 06:00:00')",
    "insert into audience_campaign_members values ('Spring', 'c1', 'r1')",
)


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "duckdb":
        duck = DuckDBEngine()
        yield duck
        duck.close()
        return
    with new_postgres_schema() as schema:
        postgres = PostgresEngine(POSTGRES_URL, schema)
        yield postgres
        postgres.close()


def rows(engine: Engine, sql: str) -> list[dict[str, object]]:
    return engine.rows(exp.maybe_parse(sql, dialect=engine.dialect))


def test_a_new_ledger_names_kind_and_name_and_its_version(engine: Engine) -> None:
    ledger.ensure_tables(engine)
    tables = engine.catalog().tables
    assert list(tables["audience_recipients"])[:3] == [
        "customer_id",
        "activation_kind",
        "activation_name",
    ]
    assert {"activation_kind", "activation_name"} <= set(tables["audience_members"])
    assert rows(engine, "select version from audience_state where component = 'ledger'") == [
        {"version": ledger.LAYOUT_VERSION}
    ]
    ledger.ensure_tables(engine)  # again: nothing changes, nothing doubles
    assert len(rows(engine, "select * from audience_state")) == 1


def test_a_first_layout_ledger_is_migrated_with_its_rows(engine: Engine) -> None:
    for statement in FIRST_LAYOUT:
        engine.execute(exp.maybe_parse(statement, dialect=engine.dialect))
    ledger.ensure_tables(engine)
    assert rows(
        engine,
        "select customer_id, activation_kind, activation_name, run_id from audience_recipients",
    ) == [
        {
            "customer_id": "c1",
            "activation_kind": "campaign",
            "activation_name": "Spring",
            "run_id": "r1",
        }
    ]
    assert rows(engine, "select * from audience_members") == [
        {
            "activation_kind": "campaign",
            "activation_name": "Spring",
            "customer_id": "c1",
            "run_id": "r1",
        }
    ]
    assert "audience_campaign_members" not in engine.catalog().tables


def test_threads_laying_out_the_ledger_at_once_do_not_conflict(tmp_path: Path) -> None:
    """`worker --concurrency` threads open one DuckDB file each with a connection of their own;
    all of them may find the ledger missing at the same moment."""
    path = tmp_path / "customers.duckdb"
    engines = [DuckDBEngine(path) for _ in range(4)]
    try:
        for _ in range(10):
            for table in ("audience_state", "audience_recipients", "audience_members"):
                engines[0].execute(
                    exp.Drop(tables=[exp.to_table(table)], kind="TABLE", exists=True)
                )
            start = threading.Barrier(len(engines))
            errors: list[BaseException] = []

            def lay_out(
                engine: Engine, start: threading.Barrier, errors: list[BaseException]
            ) -> None:
                start.wait()
                try:
                    ledger.ensure_tables(engine)
                except BaseException as error:
                    errors.append(error)

            threads = [threading.Thread(target=lay_out, args=(e, start, errors)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert len(rows(engines[0], "select * from audience_state")) == 1
    finally:
        for engine in engines:
            engine.close()
