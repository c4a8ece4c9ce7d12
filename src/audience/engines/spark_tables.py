"""Parquet tables in a folder, registered in a Spark session's catalog.

Spark's own catalog (without Hive) lives only as long as the process: what lasts is the
warehouse folder, one sub-folder of Parquet files per table, which every session registers
again when it opens. Plain Parquet has no DELETE, UPDATE or transactions (and Delta Lake would
need jars from Maven), so a table changes in one of two ways:

- rows are added with INSERT, which Spark commits as new files: a run that fails half-way leaves
  rows of a run id the metadata store never marks succeeded, which no reader trusts;
- anything else rewrites the table: its new content is written beside it, then takes its place
  by renaming folders, so readers see the old table or the new one, never a half-written one.

Tables a run needs only for itself (`CREATE TEMPORARY TABLE`) are Parquet folders in a scratch
folder of the engine's own, removed when they are dropped or the engine closes — or, when its
process died (a run snapshot holds customer ids), by the next engine opened on that machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from audience.errors import EngineError, MissingTable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCRATCH = "_scratch"
"""The warehouse's sub-folder of scratch folders (a leading `_`: never taken for a table)."""


_HOST = socket.gethostname()


def sweep_dead_scratch(folder: Path) -> int:
    """Remove the scratch folders of engines whose process died on this machine (named
    `host-pid-id`; those of other machines sharing the warehouse are theirs to sweep); how
    many were removed."""
    removed = 0
    for entry in folder.iterdir() if folder.is_dir() else ():
        parts = entry.name.rsplit("-", 2)
        if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def quoted(name: str) -> str:
    """`name` as a Spark SQL identifier."""
    return exp.to_identifier(name, quoted=True).sql("spark")


def _literal(path: Path | str) -> str:
    return exp.Literal.string(str(path)).sql("spark")


class Warehouse:
    """The Parquet tables of one workspace, in `root`, seen through `session`; `read_only`
    tables (name → path) are read where they are and never changed."""

    def __init__(self, session: SparkSession, root: Path, read_only: dict[str, str]) -> None:
        self.session = session
        self.root = root
        self.read_only = dict(read_only)
        sweep_dead_scratch(root / SCRATCH)
        self.scratch = root / SCRATCH / f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"
        self._temporary: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)
        for name, path in self.read_only.items():
            if not _has_files(path):
                raise MissingTable(
                    f"engine.tables.{name}: no Parquet files at {path}; fix the path or remove "
                    "the entry"
                )
            self._register(name, path)
        self.register_new()

    def register_new(self) -> None:
        """Register table folders that appeared in the warehouse since the session last looked
        (made by another process, or before this one started)."""
        known = {table.name for table in self.session.catalog.listTables()}
        for folder in sorted(self.root.iterdir()):
            table = folder.is_dir() and folder.name[0] not in "_."
            if table and folder.name not in known and _has_files(str(folder)):
                self._register(folder.name, str(folder))

    def location(self, name: str) -> Path:
        """The folder of a table Audience may change."""
        if name in self.read_only:
            raise EngineError(
                f"table {name} is read from {self.read_only[name]} (engine.tables); Audience "
                "never changes it"
            )
        return self.scratch / name if name in self._temporary else self.root / name

    def is_temporary(self, name: str) -> bool:
        """Whether `name` is one of the engine's temporary tables."""
        return name in self._temporary

    def create(self, name: str, columns: str, *, temporary: bool) -> None:
        """Create an empty table of `columns` (Spark SQL column definitions) unless it is
        there; it holds one file from the start, so its folder tells its columns to a process
        that registers it later."""
        if temporary:
            self._temporary.add(name)
        folder = self.location(name)
        if folder.exists():
            self.register_new()
            return
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {quoted(name)} ({columns}) USING PARQUET "
            f"LOCATION {_literal(folder)}"
        )
        target = exp.table_(name, quoted=True)
        nothing = exp.select("*").from_(target.copy()).limit(0)
        self._sql(exp.insert(nothing, target).sql("spark"))

    def create_as(self, name: str, query: str, *, temporary: bool) -> None:
        """Create a table holding the result of `query`."""
        if temporary:
            self._temporary.add(name)
        folder = self.location(name)
        self._sql(
            f"CREATE TABLE {quoted(name)} USING PARQUET LOCATION {_literal(folder)} AS {query}"
        )

    def rewrite(self, name: str, query: str) -> None:
        """Replace the table's content with the result of `query` (which may read the table):
        written beside it first, then swapped in."""
        folder = self.location(name)
        staged = self.scratch / f"rewrite-{uuid.uuid4().hex}"
        self.dataframe(query).write.parquet(str(staged))
        self._swap(name, folder, staged)
        self._sql(f"REFRESH TABLE {quoted(name)}")

    def replace(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
        """Create or replace a table from Arrow batches, written as Parquet straight from the
        driver (the sample, the demo's record) and registered afresh (its columns may differ)."""
        folder = self.location(name)
        staged = self.scratch / f"replace-{uuid.uuid4().hex}"
        staged.mkdir(parents=True)
        with pq.ParquetWriter(staged / "part-00000.parquet", schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        self._sql(f"DROP TABLE IF EXISTS {quoted(name)}")
        self._swap(name, folder, staged)
        self._register(name, str(folder))

    def copy(self, name: str) -> str:
        """A temporary table holding what `name` holds now, to be changed in its stead; its
        files are hard links to the table's (Parquet files never change once written)."""
        copy = f"audience_copy_{uuid.uuid4().hex}"
        self._temporary.add(copy)
        target = self.location(copy)
        target.mkdir(parents=True)
        for file in self.location(name).iterdir():
            if file.is_file() and not file.name.startswith(("_", ".")):
                try:
                    (target / file.name).hardlink_to(file)
                except OSError:  # a file system without hard links
                    shutil.copy2(file, target / file.name)
        self._register(copy, str(target))
        return copy

    def take_place(self, name: str, copy: str) -> None:
        """Make the copy `name`'s content, and forget the copy."""
        self._swap(name, self.location(name), self.location(copy))
        self._sql(f"REFRESH TABLE {quoted(name)}")
        self._sql(f"DROP TABLE IF EXISTS {quoted(copy)}")
        self._temporary.discard(copy)

    def drop(self, name: str) -> None:
        """Drop the table and its files."""
        self._sql(f"DROP TABLE IF EXISTS {quoted(name)}")
        if name in self.read_only:
            return
        shutil.rmtree(self.location(name), ignore_errors=True)
        self._temporary.discard(name)

    def close(self) -> None:
        """Drop the temporary tables and the scratch folder."""
        for name in list(self._temporary):
            self.drop(name)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def dataframe(self, query: str) -> DataFrame:
        """The result of `query`, not yet computed."""
        return self.session.sql(query)

    def _swap(self, name: str, folder: Path, staged: Path) -> None:
        # Two renames in one file system: the table's folder is the old one or the new one.
        retired = self.scratch / f"retired-{name}-{uuid.uuid4().hex}"
        retired.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            folder.rename(retired)
        staged.rename(folder)
        shutil.rmtree(retired, ignore_errors=True)

    def _register(self, name: str, path: str) -> None:
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {quoted(name)} USING PARQUET LOCATION {_literal(path)}"
        )

    def _sql(self, statement: str) -> None:
        self.session.sql(statement)


def _has_files(path: str) -> bool:
    folder = Path(path)
    if not folder.exists():
        return False
    if folder.is_file():
        return True
    return any(not f.name.startswith(("_", ".")) for f in folder.rglob("*") if f.is_file())
