"""DuckDB has one writing process: a command that finds the file held waits, says who holds it,
and gives up with a clear error after `engine.lock_timeout` seconds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlglot import exp

from audience.engines.duckdb import DuckDBEngine
from audience.errors import EngineError

HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


@contextmanager
def held(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database file for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_opening_waits_for_the_holder_and_says_who_it_is(tmp_path: Path) -> None:
    path = tmp_path / "customers.duckdb"
    DuckDBEngine(path).close()
    heard: list[str] = []
    with held(path, 1.0) as holder:
        engine = DuckDBEngine(path, lock_timeout=30, on_wait=heard.append)
    assert engine.rows(exp.select(exp.alias_(exp.Literal.number(1), "one")))[0]["one"] == 1
    engine.close()
    assert len(heard) == 1
    assert heard[0].startswith(f"waiting for the customer database, held by process {holder.pid}")


def test_opening_gives_up_after_the_timeout_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "customers.duckdb"
    DuckDBEngine(path).close()
    with held(path, 30) as holder, pytest.raises(EngineError) as raised:
        DuckDBEngine(path, lock_timeout=0.3)
    assert f"in use by process {holder.pid}" in str(raised.value)
    assert "engine.lock_timeout" in str(raised.value)
