"""Engines: where customer data lives. One class per engine, chosen by the workspace settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audience.engines.base import Engine
from audience.errors import WorkspaceError
from audience.settings import EngineSettings


def open_engine(
    settings: EngineSettings, workspace: Path, on_wait: Callable[[str], None] | None = None
) -> Engine:
    """The engine the settings name; heavy drivers are imported only when chosen. `on_wait`
    hears once why opening waits (another process holds the DuckDB file)."""
    if settings.type == "duckdb":
        from audience.engines.duckdb import DuckDBEngine

        path = Path(settings.path)
        return DuckDBEngine(
            path if path.is_absolute() else workspace / path,
            settings.memory_limit,
            lock_timeout=settings.lock_timeout,
            on_wait=on_wait,
        )
    if settings.type == "spark":
        from audience.engines.spark import SparkEngine

        return SparkEngine(settings, workspace)
    if settings.url is None:
        raise WorkspaceError("engine.url is required for the postgres engine")
    from audience.engines.postgres import PostgresEngine

    return PostgresEngine(settings.url, settings.schema_)


__all__ = ["Engine", "open_engine"]
