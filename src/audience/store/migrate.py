"""Bring a metadata store's schema to the current version, once, whoever else starts at the time.

The store may share its database (and default schema) with other applications, so every table of
Audience's is prefixed `audience_`, Alembic's version table included. Migrations run inside one
transaction that first takes a lock (PostgreSQL: a transaction-level advisory lock; SQLite: a
write lock from `BEGIN IMMEDIATE`), so two processes opening a new store together do not both try
to create it: the second waits, then finds it current. A store already at `HEAD` is seen so by
one query, without loading Alembic (a quarter of a second of every command's start).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, column, inspect, select, table, text
from sqlalchemy.exc import SQLAlchemyError

from audience.errors import WorkspaceError
from audience.store.models import VERSION_TABLE

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0005"
"""The newest revision in `migrations/versions` (a test holds the two together)."""

ADVISORY_LOCK_KEY = 0x61756469656E6365  # "audience" in ASCII: one lock for every store's upgrade
"""PostgreSQL advisory lock held while a store's schema is upgraded."""

_UNPREFIXED = ("definition_versions", "insight_snapshots", "runs", "deliveries", "alembic_version")
"""The tables of stores made before the prefix (revisions 0001 and 0002 under these names)."""

_IN_THIS_PROCESS = threading.Lock()
"""Alembic keeps the running migration in module-level state, so threads of one process (the
server opening workspaces) take turns; the database lock below covers other processes."""


def upgrade(engine: Engine) -> None:
    """Migrate the store to the newest revision, under a lock, in one transaction."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    with _IN_THIS_PROCESS, engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # pysqlite begins transactions lazily and never before DDL; take the write lock now
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        _refuse_unprefixed_store(connection)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def _at_head(engine: Engine) -> bool:
    """Whether the store is already at `HEAD` (False when it has no version table yet)."""
    versions = table(VERSION_TABLE, column("version_num"))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(versions.c.version_num)).scalars()) == [HEAD]
    except SQLAlchemyError:
        return False  # no version table yet: a new store


def _refuse_unprefixed_store(connection: Connection) -> None:
    """Refuse a store an earlier Audience made without the prefix, rather than guess which
    unprefixed tables are its own: `runs` or `alembic_version` may belong to another application.
    """
    found = set(inspect(connection).get_table_names())
    if VERSION_TABLE in found or not {"definition_versions", "insight_snapshots"} <= found:
        return
    if "alembic_version" in found:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        if not set(versions) <= {"0001", "0002"}:
            return  # another application's tables that happen to share two names
    raise WorkspaceError(
        "the metadata store was made by an earlier Audience, whose tables had no prefix "
        f"({', '.join(t for t in _UNPREFIXED if t in found)}); this version keeps its own as "
        "audience_*. Export your definitions with the earlier version, then point [store] url "
        "at a new database (or drop those tables) and apply them again"
    )
