"""Tables of the metadata store (control state, SPEC §10), as SQLAlchemy 2 typed models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def aware(moment: datetime) -> datetime:
    """A stored time with its zone: SQLite keeps none, and everything is written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


VERSION_TABLE = "audience_alembic_version"
"""Alembic's record of the store's revision. Every table is prefixed `audience_`, so the store
can share a database schema with other applications (and their own `alembic_version`)."""


class Base(DeclarativeBase):
    """Base of every metadata table."""


class DefinitionVersion(Base):
    """One version of one definition, as applied; the highest version is the current one."""

    __tablename__ = "audience_definition_versions"
    __table_args__ = (UniqueConstraint("kind", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InsightSnapshot(Base):
    """The insights of a segment at one refresh, kept so they can be charted over time."""

    __tablename__ = "audience_insight_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)


class RunRecord(Base):
    """One send of an activation: what, when, how it went, how many in each group."""

    __tablename__ = "audience_runs"
    __table_args__ = (
        # A real run due at a given time exists once, whoever makes it (SPEC §7: at most once).
        Index(
            "audience_runs_due",
            "activation_kind",
            "activation_name",
            "scheduled_for",
            unique=True,
            sqlite_where=text("NOT is_test"),
            postgresql_where=text("NOT is_test"),
        ),
        # Claims look for active runs only, oldest first and per activation (revision 0004).
        Index(
            "audience_runs_ready",
            "scheduled_for",
            "id",
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "audience_runs_active",
            "activation_kind",
            "activation_name",
            "scheduled_for",
            sqlite_where=text("status IN ('queued', 'running') AND NOT is_test"),
            postgresql_where=text("status IN ('queued', 'running') AND NOT is_test"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    activation_kind: Mapped[str] = mapped_column(String(32))
    activation_name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    """queued, running, succeeded, failed or canceled."""
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """What the error was: transient or terminal (a delivery), engine, definition, state…"""
    trigger: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """schedule (made by a worker) or manual (a command)."""
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """A queued retry waits until then (back-off)."""
    retries: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """Each failed attempt that was retried: when, its error and its kind."""


class DeliveryRecord(Base):
    """One file a run put on a destination."""

    __tablename__ = "audience_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("audience_runs.id", ondelete="CASCADE"), index=True
    )
    destination: Mapped[str] = mapped_column(String(200))
    sub_audience: Mapped[str | None] = mapped_column(String(200), nullable=True)
    group_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="data")
    uri: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    delivered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ActivationRecord(Base):
    """An activation put on its schedule (one that is not here is a draft)."""

    __tablename__ = "audience_activations"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    """scheduled, paused or canceled: what the user asked for."""
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the schedule took effect: nothing before it is owed; `once: asap` is due then."""
    last_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """The newest due time a run was made for (or that resuming passed over)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRecord(Base):
    """Someone who signs in to the API or web UI, with a role (viewer, editor or admin)."""

    __tablename__ = "audience_users"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    """argon2id; None for an account that signs in with tokens only."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRecord(Base):
    """An API token: only its SHA-256 is kept; the token itself is shown once."""

    __tablename__ = "audience_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_name: Mapped[str] = mapped_column(
        ForeignKey("audience_users.name", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SecretRecord(Base):
    """A credential, encrypted with the workspace's secret key (Fernet); never stored in clear."""

    __tablename__ = "audience_secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(200))


class AuditRecord(Base):
    """Who did what, when: definitions applied, activations launched or paused, secrets, users
    and tokens changed, sign-ins."""

    __tablename__ = "audience_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(400))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
