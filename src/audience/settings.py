"""Workspace settings: `audience.toml`, overridden by `AUDIENCE__SECTION__KEY` variables.

Loaded in one place (`load_settings`), so every front end sees the same configuration.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audience.errors import WorkspaceError

SETTINGS_FILE = "audience.toml"
ENV_PREFIX = "AUDIENCE__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineSettings(_Section):
    """Where the customer data lives."""

    type: Literal["duckdb", "postgres", "spark"] = "duckdb"
    path: str = "customer360.duckdb"
    url: str | None = None
    schema_: str = Field("public", alias="schema")
    memory_limit: str | None = Field(
        default=None, pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
    )
    """DuckDB: the most memory it may use before spilling to disk, e.g. "1GB". Spark: the
    driver's memory (in local mode, all of Spark's), given when the process starts Spark."""
    master: str = "local[*]"
    """Spark only: where Spark runs: `local[*]` (this machine, every core) or a cluster's
    master URL (`spark://host:7077`, `yarn`, `k8s://…`)."""
    app_name: str = "audience"
    """Spark only: the application's name, as the cluster's UI shows it."""
    warehouse: str = "spark-warehouse"
    """Spark only: the folder (relative to the workspace, or a URI) holding the Parquet tables
    Audience writes (the sample, the recipients ledger, journey state) and reads back; each
    sub-folder is one table."""
    tables: dict[str, str] = {}
    """Spark only: more tables, read from Parquet where they already are: name → path or URI."""
    conf: dict[str, str] = {}
    """Spark only: extra Spark settings (`spark.executor.memory`, …), given when the process
    starts Spark."""
    lock_timeout: float = Field(default=300.0, ge=0)
    """DuckDB only: how many seconds to wait for the database while another process (a worker,
    another command) holds it, before giving up."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TableSettings(_Section):
    """Names of the tables Audience reads, and of their columns it relies on."""

    profile: str = "customer_360"
    source: str = "merged_customers"
    events: str = "unified_transactions"
    id: str = "amperity_id"
    order_id: str = "order_id"
    order_datetime: str = "order_datetime"
    order_revenue: str = "order_revenue"
    is_return: str = "is_return"
    is_cancellation: str = "is_cancellation"
    events_one_row_per_order: bool = True
    """SPEC §1: one row per order, so orders are counted as rows (set false for item-level
    tables: orders are then counted as distinct order ids, which costs more)."""
    email: str = "email"
    email_opt_out: str = "email_opt_out"
    phone: str = "phone"
    sms_opt_out: str = "sms_opt_out"
    address: str = "address"
    postal: str = "postal"


class StoreSettings(_Section):
    """Where definitions, runs and insight history are kept."""

    url: str = "sqlite:///.audience/state.db"


class WorkerSettings(_Section):
    """How runs are claimed, kept alive and retried (commands that send use the lease too)."""

    lease_seconds: float = Field(default=300.0, gt=0)
    """How long a claimed run is its worker's without a heartbeat; after that, another worker
    takes it over. Heartbeats come every third of it."""
    poll_seconds: float = Field(default=10.0, gt=0)
    """How often an idle worker looks for due runs."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts a run gets when its deliveries fail transiently (time-outs, 429, 5xx)."""
    retry_base_seconds: float = Field(default=30.0, gt=0)
    """The first back-off; it doubles each attempt (with jitter), up to `retry_cap_seconds`."""
    retry_cap_seconds: float = Field(default=3600.0, gt=0)


class SecretsSettings(_Section):
    """The key that encrypts stored secrets (Fernet). It never sits in `audience.toml` or in the
    store: give it in `AUDIENCE__SECRETS__KEY`, or name a file outside the workspace that holds
    it. Several keys, newest first (comma-separated, or one a line in the file), rotate: the
    first encrypts, any opens, and `audience secret rotate` re-encrypts everything with the
    first."""

    key: str | None = None
    key_file: str | None = None


class Settings(_Section):
    """Everything `audience.toml` holds."""

    engine: EngineSettings = EngineSettings()
    tables: TableSettings = TableSettings()
    store: StoreSettings = StoreSettings()
    worker: WorkerSettings = WorkerSettings()
    secrets: SecretsSettings = SecretsSettings()


DEFAULT_SCHEMA = "audience"
"""The PostgreSQL schema `audience init` writes: one of Audience's own, so a new workspace never
points at existing tables until its settings say which schema holds the customer 360."""


def render_settings(engine: str, database_url: str | None, schema: str = DEFAULT_SCHEMA) -> str:
    """The text of a new `audience.toml` for `audience init`."""
    if engine == "postgres":
        url = database_url or "postgresql://127.0.0.1/test"
        engine_block = (
            f'[engine]\ntype = "postgres"\nurl = "{url}"\nschema = {json.dumps(schema)}\n'
        )
    elif engine == "spark":
        engine_block = (
            '[engine]\ntype = "spark"\n'
            "# local[*]: Spark on this machine; a cluster's URL (spark://host:7077) otherwise\n"
            'master = "local[*]"\nwarehouse = "spark-warehouse"\n'
        )
    else:
        engine_block = '[engine]\ntype = "duckdb"\npath = "customer360.duckdb"\n'
    store_url = database_url if engine == "postgres" and database_url else None
    store_line = f'url = "{store_url}"' if store_url else 'url = "sqlite:///.audience/state.db"'
    return (
        "# Audience workspace settings; AUDIENCE__ENGINE__URL and friends override them.\n"
        f"{engine_block}\n"
        "[tables]\n"
        'profile = "customer_360"\n'
        'source = "merged_customers"\n'
        'events = "unified_transactions"\n'
        'id = "amperity_id"\n\n'
        "[store]\n"
        f"{store_line}\n"
    )


def load_settings(directory: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read `directory/audience.toml` and apply `AUDIENCE__SECTION__KEY` overrides."""
    path = directory / SETTINGS_FILE
    if not path.is_file():
        raise WorkspaceError(
            f"{directory} is not an Audience workspace (no {SETTINGS_FILE}); "
            "run `audience init` or pass --workspace"
        )
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{path}: {exc}") from None
    if isinstance(data.get("secrets"), dict) and "key" in data["secrets"]:
        raise WorkspaceError(
            f"{path}: secrets.key: the secret key never sits in {SETTINGS_FILE}; set "
            "AUDIENCE__SECRETS__KEY or point secrets.key_file at a file outside the workspace"
        )
    for key, value in (os.environ if environ is None else environ).items():
        if key.startswith(ENV_PREFIX):
            section, _, name = key[len(ENV_PREFIX) :].lower().partition("__")
            if section and name:
                data.setdefault(section, {})[name] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).replace("schema_", "schema")
        raise WorkspaceError(f"{path}: {field}: {first['msg']}") from None
