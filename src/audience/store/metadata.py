"""The metadata store: definitions and their versions, insight history (and, later, runs).

SQLite in the workspace by default, PostgreSQL in production; the schema is kept by Alembic
migrations, applied when the store is opened (see `migrate`). Every table is prefixed `audience_`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InvalidatePoolError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from audience.errors import WorkspaceError
from audience.shapes import Shape
from audience.store.activations import ActivationLog
from audience.store.audit import AuditLog
from audience.store.migrate import upgrade
from audience.store.models import DefinitionVersion, InsightSnapshot, aware
from audience.store.runs import RunLog

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from audience.store.accounts import Accounts
    from audience.store.secrets import Secrets


@dataclass(frozen=True)
class StoredDefinition:
    """A definition's body as applied, with its version."""

    kind: str
    name: str
    version: int
    body: dict[str, Any]
    applied_at: datetime


class SegmentSummary(BaseModel):
    """A segment as `segment list` shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    """The newest version."""
    status: Literal["active", "draft"]
    """The newest version's status: a draft is an edit others do not see yet."""
    active_version: int | None
    """The version campaigns and other segments use; none while it has only drafts."""
    applied_at: datetime


class AppliedChange(Shape):
    """What `apply` did with one document (an item of `apply --json` and of the API's
    answer)."""

    kind: str
    name: str
    version: int
    changed: bool


def resolve_url(url: str, workspace: Path) -> str:
    """Make a relative SQLite path relative to the workspace (and create its folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        path = Path(url[len(prefix) :])
        if not path.is_absolute():
            path = workspace / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{path}"
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


PING_AFTER_IDLE = 1.0
"""Seconds a pooled connection rests before it is pinged when taken again."""


def ping_after_rest(engine: Engine) -> None:
    """Ping a pooled connection that has rested in the pool, and replace it if the server
    dropped it meanwhile (a restart, a fail-over, an idle time-out), instead of failing the
    command or run that happened to take it. One that comes back within `PING_AFTER_IDLE`
    goes straight to work: a ping is a round trip, as much as a worker's statements cost
    themselves, and the run log retries those once on a new connection when the server
    dropped theirs (`RunLog._first_row`)."""

    @event.listens_for(engine, "checkin")
    def rested(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["rested_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        rested_at = record.info.pop("rested_at", None)
        if rested_at is None or time.monotonic() - rested_at < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The server dropped it, and likely its siblings: the pool connects anew.
            raise InvalidatePoolError(str(error)) from error


def one_statement_writes(engine: Engine) -> Engine:
    """Where the run log runs its hottest statements, each committed by itself (see
    `RunLog._first_row`).

    On PostgreSQL, a pool of its own: psycopg prepares a statement run five times on a
    connection, but forgets everything it prepared at any rollback, and the store's read
    sessions end with one; on connections that never roll back, a worker's statements stay
    prepared. They are planned once, generically (`plan_cache_mode`): left to choose,
    PostgreSQL plans a run's end and next claim afresh every time, which costs it twice what
    running them does. Elsewhere, the store's own pool in autocommit mode."""
    if engine.dialect.name != "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    own = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    ping_after_rest(own)

    @event.listens_for(engine, "handle_error")
    def dropped(context: ExceptionContext) -> None:
        # The run log's connections died with the store's (`RunLog._once` does the converse).
        if context.is_disconnect:
            own.dispose(close=False)

    @event.listens_for(own, "connect")
    def plan_once(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
        dbapi_connection.commit()

    return own


class MetadataStore:
    """Control state of a workspace."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url)
            if self.engine.dialect.name != "sqlite":  # a file: nothing to drop it
                ping_after_rest(self.engine)
            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise
        except SQLAlchemyError as exc:
            raise WorkspaceError(f"cannot open the metadata store: {exc.args[0]}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.one_statement_writes = one_statement_writes(self.engine)
        self.runs = RunLog(self._sessions, self.one_statement_writes)
        self.activations = ActivationLog(self._sessions)
        self.audit = AuditLog(self._sessions)

    @cached_property
    def accounts(self) -> Accounts:
        """Users and their API tokens (argon2 is loaded only by commands that need it)."""
        from audience.store.accounts import Accounts

        return Accounts(self._sessions)

    def secrets(self, keys: Callable[[], MultiFernet]) -> Secrets:
        """The stored secrets, opened with `keys` (read only when a secret is)."""
        from audience.store.secrets import Secrets

        return Secrets(self._sessions, keys)

    def session(self) -> Session:
        """A new session; use it as a context manager."""
        return self._sessions()

    def save_definitions(
        self, documents: Iterable[tuple[str, str, dict[str, Any]]], now: datetime
    ) -> list[AppliedChange]:
        """Store each (kind, name, body) as a new version if it changed, all in one transaction.

        A segment given twice (its active version, then a draft edit of it, as `export` writes
        it) is compared as a pair: the first with the newest active version, the draft with the
        newest version, so applying an export again changes nothing."""
        items = list(documents)
        paired = {key for key, count in Counter((k, n) for k, n, _ in items).items() if count > 1}
        changes: list[AppliedChange] = []
        with self.session() as session, session.begin():
            for kind, name, body in items:
                current = _latest(session, kind, name)
                if (kind, name) in paired:
                    paired.discard((kind, name))  # the first of the pair: the active version
                    active = _latest_active(session, name)
                    current = active if active is not None and active.body == body else current
                if current is not None and current.body == body:
                    changes.append(
                        AppliedChange(kind=kind, name=name, version=current.version, changed=False)
                    )
                    continue
                version = 1 if current is None else current.version + 1
                session.add(
                    DefinitionVersion(
                        kind=kind, name=name, version=version, body=body, applied_at=now
                    )
                )
                changes.append(AppliedChange(kind=kind, name=name, version=version, changed=True))
        return changes

    def definition(
        self, kind: str, name: str, version: int | None = None
    ) -> StoredDefinition | None:
        """The current version of one definition (or the version asked for)."""
        with self.session() as session:
            if version is None:
                row = _latest(session, kind, name)
            else:
                row = session.scalars(
                    select(DefinitionVersion).where(
                        DefinitionVersion.kind == kind,
                        DefinitionVersion.name == name,
                        DefinitionVersion.version == version,
                    )
                ).first()
            return _stored(row) if row is not None else None

    def definitions(self, kind: str | None = None) -> list[StoredDefinition]:
        """The current version of every definition (of one kind), by kind and name (read as
        plain rows: a worker reads them all on every tick, and ORM objects cost more than the
        read)."""
        newest = select(
            DefinitionVersion.kind,
            DefinitionVersion.name,
            func.max(DefinitionVersion.version).label("version"),
        )
        if kind is not None:  # a run reads its segments and destinations among 500 campaigns
            newest = newest.where(DefinitionVersion.kind == kind)
        latest = newest.group_by(DefinitionVersion.kind, DefinitionVersion.name).subquery()
        query = (
            select(
                DefinitionVersion.kind,
                DefinitionVersion.name,
                DefinitionVersion.version,
                DefinitionVersion.body,
                DefinitionVersion.applied_at,
            )
            .join(
                latest,
                (DefinitionVersion.kind == latest.c.kind)
                & (DefinitionVersion.name == latest.c.name)
                & (DefinitionVersion.version == latest.c.version),
            )
            .order_by(DefinitionVersion.kind, DefinitionVersion.name)
        )
        if kind is not None:
            query = query.where(DefinitionVersion.kind == kind)
        with self.session() as session:
            return [
                StoredDefinition(kind, name, version, body, aware(applied_at))
                for kind, name, version, body, applied_at in session.execute(query)
            ]

    def active_segments(self) -> list[StoredDefinition]:
        """The newest *active* version of every segment (SPEC §2: an edit works on a draft
        until it is activated, so campaigns and other segments keep using the active one)."""
        query = (
            select(DefinitionVersion)
            .where(DefinitionVersion.kind == "segment")
            .order_by(DefinitionVersion.name, DefinitionVersion.version.desc())
        )
        found: dict[str, StoredDefinition] = {}
        with self.session() as session:
            for row in session.scalars(query):
                if row.name not in found and _is_active(row.body):
                    found[row.name] = _stored(row)
        return list(found.values())

    def segment_summaries(self) -> list[SegmentSummary]:
        """Every segment, by name: its newest version, that version's status, and the version
        others use (its newest active one, if any)."""
        query = (
            select(DefinitionVersion)
            .where(DefinitionVersion.kind == "segment")
            .order_by(DefinitionVersion.name, DefinitionVersion.version.desc())
        )
        found: dict[str, SegmentSummary] = {}
        with self.session() as session:
            for row in session.scalars(query):
                summary = found.get(row.name)
                if summary is None:
                    found[row.name] = SegmentSummary(
                        name=row.name,
                        version=row.version,
                        status="active" if _is_active(row.body) else "draft",
                        active_version=row.version if _is_active(row.body) else None,
                        applied_at=aware(row.applied_at),
                    )
                elif summary.active_version is None and _is_active(row.body):
                    found[row.name] = summary.model_copy(update={"active_version": row.version})
        return list(found.values())

    def record_insights(
        self, segment: str, version: int, computed_at: datetime, figures: dict[str, Any]
    ) -> None:
        """Keep one refresh of a segment's insights."""
        with self.session() as session, session.begin():
            session.add(
                InsightSnapshot(
                    segment=segment, version=version, computed_at=computed_at, figures=figures
                )
            )

    def insight_history(self, segment: str) -> list[dict[str, Any]]:
        """Every recorded refresh of a segment's insights, oldest first."""
        query = (
            select(InsightSnapshot)
            .where(InsightSnapshot.segment == segment)
            .order_by(InsightSnapshot.computed_at, InsightSnapshot.id)
        )
        with self.session() as session:
            return [{"version": row.version, **row.figures} for row in session.scalars(query)]

    def close(self) -> None:
        """Release the store's connections."""
        self.one_statement_writes.dispose()
        self.engine.dispose()


def _latest(session: Session, kind: str, name: str) -> DefinitionVersion | None:
    return session.scalars(
        select(DefinitionVersion)
        .where(DefinitionVersion.kind == kind, DefinitionVersion.name == name)
        .order_by(DefinitionVersion.version.desc())
        .limit(1)
    ).first()


def _latest_active(session: Session, name: str) -> DefinitionVersion | None:
    versions = session.scalars(
        select(DefinitionVersion)
        .where(DefinitionVersion.kind == "segment", DefinitionVersion.name == name)
        .order_by(DefinitionVersion.version.desc())
    )
    return next((row for row in versions if _is_active(row.body)), None)


def _is_active(body: dict[str, Any]) -> bool:
    return bool(body.get("status", "active") == "active")


def _stored(row: DefinitionVersion) -> StoredDefinition:
    return StoredDefinition(row.kind, row.name, row.version, row.body, aware(row.applied_at))
