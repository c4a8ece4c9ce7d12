"""What the tests share besides fixtures: the fixed moment, the engines, workspaces on them and
PostgreSQL schemas of their own. Tests import it as `realservices` (a name of its own: every
folder's `conftest` shadows the others)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from audience.settings import EngineSettings, Settings, StoreSettings
from audience.workspace import Workspace

POSTGRES_URL = os.environ.get("AUDIENCE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
"""The fixed moment tests run at: every relative date is computed from it."""
SAMPLE_PROFILES = 3_000
SAMPLE_SEED = 7
ENGINES = ["duckdb", "postgres", "spark"]
SPARK_TEST_CONF = {
    # the sample is small: a few partitions, not Spark's 200, and no web UI
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}
"""Spark starts once per test process (one application per process); every Spark workspace
gets a session of its own on it."""


def fixed_clock() -> datetime:
    """The tests' clock: always NOW."""
    return NOW


@contextmanager
def new_postgres_schema() -> Iterator[str]:
    """A fresh schema in the `test` database, dropped afterwards."""
    schema = f"audience_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))


def make_workspace(directory: Path, engine: str, schema: str | None = None) -> Workspace:
    """A workspace in `directory` on the given engine, with the fixed clock."""
    if engine == "postgres":
        engine_settings = EngineSettings(type="postgres", url=POSTGRES_URL, schema=schema)
    elif engine == "spark":
        engine_settings = EngineSettings(type="spark", master="local[2]", conf=SPARK_TEST_CONF)
    else:
        engine_settings = EngineSettings(type="duckdb", path="customer360.duckdb")
    settings = Settings(engine=engine_settings, store=StoreSettings())
    return Workspace(directory, settings, clock=fixed_clock)
