"""What is Spark's own: Parquet tables that change by rewriting, transactions made of copies,
batches a partition at a time, and the errors of a runtime that is missing or far away."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlglot import exp

from audience.engines.spark import SparkEngine
from audience.errors import EngineError, MissingTable, UnknownReference
from audience.settings import SETTINGS_FILE, EngineSettings, render_settings
from audience.workspace import Workspace
from realservices import SPARK_TEST_CONF, make_workspace

PEOPLE = pa.table(
    {
        "id": ["a", "b", "c", "d"],
        "tier": ["gold", "none", None, "gold"],
        "seen_at": pa.array([1_700_000_000_000_000] * 4, pa.timestamp("us")),
    }
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SparkEngine]:
    settings = EngineSettings(type="spark", master="local[2]", conf=SPARK_TEST_CONF)
    opened = SparkEngine(settings, tmp_path)
    opened.replace_table("people", PEOPLE.schema, PEOPLE.to_batches())
    yield opened
    opened.close()


def ids(engine: SparkEngine, where: str = "true") -> list[str]:
    query = exp.maybe_parse(f"select id from people where {where} order by id", dialect="spark")
    return [row["id"] for row in engine.rows(query)]


def test_delete_and_update_rewrite_the_table(engine: SparkEngine) -> None:
    engine.execute(exp.maybe_parse("delete from people where tier = 'none'", dialect="spark"))
    assert ids(engine) == ["a", "c", "d"]  # a NULL tier is not deleted
    engine.execute(exp.maybe_parse("delete from people where id = 'zz'", dialect="spark"))
    engine.execute(
        exp.maybe_parse("update people set tier = 'silver' where id <> 'a'", dialect="spark")
    )
    assert ids(engine, "tier = 'silver'") == ["c", "d"]
    assert engine.catalog().tables["people"] == {
        "id": "string",
        "tier": "string",
        "seen_at": "timestamp",
    }


def test_a_transaction_that_fails_changes_nothing(engine: SparkEngine) -> None:
    insert = exp.maybe_parse("insert into people select 'e', 'gold', seen_at from people limit 1")
    with pytest.raises(RuntimeError), engine.transaction():
        engine.execute(exp.maybe_parse("delete from people where id = 'a'", dialect="spark"))
        engine.execute(insert)
        assert ids(engine) == ["b", "c", "d", "e"]  # the transaction sees its own writes
        raise RuntimeError("half-way")
    assert ids(engine) == ["a", "b", "c", "d"]
    with engine.transaction():
        engine.execute(exp.maybe_parse("delete from people where id = 'a'", dialect="spark"))
        engine.execute(insert)
    assert ids(engine) == ["b", "c", "d", "e"]


def test_tables_outlive_the_process_s_catalog(engine: SparkEngine, tmp_path: Path) -> None:
    """A table made empty by CREATE TABLE still tells its columns to a session that finds it
    in the warehouse later (another process, or this one after a restart)."""
    engine.execute(
        exp.maybe_parse("create table if not exists ledger (who text, n int)", dialect="spark")
    )
    engine.session.sql("drop table ledger")  # forgotten by the catalog, kept on disk
    again = SparkEngine(
        EngineSettings(type="spark", master="local[2]", conf=SPARK_TEST_CONF), tmp_path
    )
    assert again.catalog().tables["ledger"] == {"who": "string", "n": "number"}
    again.close()


def test_batches_come_a_partition_at_a_time_with_one_schema(engine: SparkEngine) -> None:
    query = exp.maybe_parse(
        "select id, cast(null as decimal(14, 2)) as revenue from range(0, 5000, 1, 4)",
        dialect="spark",
    )
    reader = engine.stream(query, batch_rows=1000)
    batches = list(reader)
    assert len(batches) >= 5 and sum(b.num_rows for b in batches) == 5000
    assert all(b.schema == reader.schema for b in batches)
    assert reader.schema.field("revenue").type == pa.decimal128(14, 2)
    assert reader.schema.field("id").nullable  # as on the other engines


def test_a_parquet_path_that_is_not_there_names_its_setting(tmp_path: Path) -> None:
    settings = EngineSettings(
        type="spark",
        master="local[2]",
        conf=SPARK_TEST_CONF,
        tables={"customer_360": str(tmp_path / "nowhere")},
    )
    with pytest.raises(MissingTable, match=r"^engine\.tables\.customer_360: no Parquet files"):
        SparkEngine(settings, tmp_path)


def test_parquet_paths_are_read_where_they_are_and_never_changed(tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "people"
    folder.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(PEOPLE, folder / "part-0.parquet")
    settings = EngineSettings(
        type="spark", master="local[2]", conf=SPARK_TEST_CONF, tables={"people": str(folder)}
    )
    engine = SparkEngine(settings, tmp_path / "ws")
    assert ids(engine) == ["a", "b", "c", "d"]
    with pytest.raises(EngineError, match="never changes it"):
        engine.execute(exp.maybe_parse("delete from people where id = 'a'"))
    engine.close()


def test_a_missing_profile_table_names_the_table(tmp_path: Path) -> None:
    segment = _segment("kind: segment\nname: Gold\nwhere: {attribute: tier, op: is_null}\n")
    with (
        make_workspace(tmp_path, "spark") as ws,
        pytest.raises(UnknownReference, match=r"'customer_360' does not exist .* \[tables\]"),
    ):
        ws.apply_documents(segment)


def _segment(text: str) -> list:  # type: ignore[type-arg]
    from audience.definitions.loader import load_text

    return load_text(text, "segment.yaml")


def _cli(workspace: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`audience demo` in a process of its own (Spark starts once per process)."""
    command = "from audience.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", command, "demo", "--profiles", "10", "-w", str(workspace)],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        timeout=120,
    )


@pytest.fixture
def spark_workspace(tmp_path: Path) -> Path:
    (tmp_path / SETTINGS_FILE).write_text(render_settings("spark", None))
    return tmp_path


def test_java_missing_is_one_line_naming_java_home(spark_workspace: Path) -> None:
    done = _cli(spark_workspace, {"JAVA_HOME": str(spark_workspace / "no-java")})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the Spark engine needs Java 17 and found JAVA_HOME ({spark_workspace}/no-java) "
        "has no bin/java: install openjdk-17-jre-headless (`make install` does) or set "
        "JAVA_HOME"
    ]


def test_an_unreachable_master_is_one_line_naming_the_setting(spark_workspace: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = f"spark://127.0.0.1:{port}"
    done = _cli(spark_workspace, {"AUDIENCE__ENGINE__MASTER": master})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot reach the Spark master {master} (engine.master): nothing answers there"
    ]


def test_workspaces_of_one_process_keep_their_tables_apart(
    sample_workspaces: dict[str, Workspace], tmp_path: Path
) -> None:
    with make_workspace(tmp_path, "spark") as other:
        assert "customer_360" not in other.engine.catalog().tables
    assert "customer_360" in sample_workspaces["spark"].engine.catalog().tables


def test_the_scratch_of_an_engine_whose_process_died_is_swept(tmp_path: Path) -> None:
    """A run snapshot (customer ids) left by a killed process goes with the next engine; a
    living process's, another machine's and anything else stay."""
    from audience.engines.spark_tables import _HOST, sweep_dead_scratch

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead = tmp_path / f"{_HOST}-{int(ended.stdout)}-{'a' * 32}"
    living = tmp_path / f"{_HOST}-{os.getpid()}-{'b' * 32}"
    elsewhere = tmp_path / f"other-host-1-{'c' * 32}"
    other = tmp_path / "not-ours"
    for folder in (dead, living, elsewhere, other):
        (folder / "audience_run_x").mkdir(parents=True)
        (folder / "audience_run_x" / "part-0.parquet").write_bytes(b"ids")
    assert sweep_dead_scratch(tmp_path) == 1
    assert not dead.exists() and living.exists() and elsewhere.exists() and other.exists()
