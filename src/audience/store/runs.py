"""The run log: every send of an activation, and each file it delivered (SPEC §7)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience.errors import NotFound, StateError
from audience.store.models import DeliveryRecord, RunRecord, aware


@dataclass(frozen=True)
class DeliveredFile:
    """One file on one destination."""

    destination: str
    uri: str
    rows: int
    bytes: int
    sha256: str
    sub_audience: str | None = None
    group: str | None = None
    role: str = "data"
    """"data", or the "manifest" or "success" file that accompanies a data file."""


@dataclass(frozen=True)
class Run:
    """A run as recorded."""

    id: str
    activation_kind: str
    activation_name: str
    version: int
    scheduled_for: datetime
    started_at: datetime
    ended_at: datetime | None
    status: str
    is_test: bool
    attempt: int
    counts: dict[str, Any]
    error: str | None
    deliveries: list[DeliveredFile] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The run as JSON-ready data."""
        return {
            "run_id": self.id,
            "activation": self.activation_name,
            "kind": self.activation_kind,
            "version": self.version,
            "scheduled_for": self.scheduled_for.isoformat(),
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "status": self.status,
            "test": self.is_test,
            "attempt": self.attempt,
            "counts": self.counts,
            "error": self.error,
            "deliveries": [
                {
                    "destination": d.destination,
                    "sub_audience": d.sub_audience,
                    "group": d.group,
                    "role": d.role,
                    "uri": d.uri,
                    "rows": d.rows,
                    "bytes": d.bytes,
                    "sha256": d.sha256,
                }
                for d in self.deliveries
            ],
        }


class RunLog:
    """Runs and deliveries in the metadata store."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def begin(
        self,
        *,
        kind: str,
        name: str,
        version: int,
        scheduled_for: datetime,
        now: datetime,
        is_test: bool = False,
    ) -> Run:
        """Start a run, or retry the failed one due at the same time (keeping its id)."""
        key = f"test:{uuid.uuid4().hex}" if is_test else f"{kind}:{name}:{_utc(scheduled_for)}"
        with self._sessions() as session, session.begin():
            row = session.scalars(select(RunRecord).where(RunRecord.run_key == key)).first()
            if row is None:
                row = RunRecord(
                    id=uuid.uuid4().hex,
                    run_key=key,
                    activation_kind=kind,
                    activation_name=name,
                    version=version,
                    scheduled_for=scheduled_for,
                    started_at=now,
                    status="running",
                    is_test=is_test,
                    attempt=1,
                    counts={},
                )
                session.add(row)
            elif row.status == "succeeded":
                raise StateError(
                    f"{kind} {name!r} already ran successfully for {_utc(scheduled_for)} "
                    f"(run {row.id}); pass another --now to send again"
                )
            elif row.status == "running":
                raise StateError(f"{kind} {name!r} is already running (run {row.id})")
            else:
                row.attempt += 1
                row.status = "running"
                row.version = version
                row.started_at = now
                row.ended_at = None
                row.error = None
            session.flush()
            return _run(row, [])

    def add_delivery(self, run_id: str, delivered: DeliveredFile, now: datetime) -> None:
        """Record one file as delivered (kept even if the run fails later)."""
        with self._sessions() as session, session.begin():
            session.add(
                DeliveryRecord(
                    run_id=run_id,
                    destination=delivered.destination,
                    sub_audience=delivered.sub_audience,
                    group_name=delivered.group,
                    role=delivered.role,
                    uri=delivered.uri,
                    rows=delivered.rows,
                    bytes=delivered.bytes,
                    sha256=delivered.sha256,
                    delivered_at=now,
                )
            )

    def clear_deliveries(self, run_id: str) -> None:
        """Forget the deliveries of an earlier attempt (a retry records them again)."""
        with self._sessions() as session, session.begin():
            for row in session.scalars(
                select(DeliveryRecord).where(DeliveryRecord.run_id == run_id)
            ):
                session.delete(row)

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        now: datetime,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Run:
        """Close a run as succeeded or failed."""
        with self._sessions() as session, session.begin():
            row = session.get(RunRecord, run_id)
            if row is None:
                raise NotFound(f"run {run_id} does not exist")
            row.status = status
            row.ended_at = now
            row.error = error
            if counts is not None:
                row.counts = counts
            session.flush()
            return _run(row, _deliveries(session, run_id))

    def get(self, run_id: str) -> Run:
        """One run with its deliveries."""
        with self._sessions() as session:
            row = session.get(RunRecord, run_id)
            if row is None:
                raise NotFound(f"run {run_id} does not exist")
            return _run(row, _deliveries(session, run_id))

    def history(self, name: str | None = None, kind: str | None = None) -> list[Run]:
        """Runs, newest first (of one activation when named)."""
        query = select(RunRecord).order_by(
            RunRecord.scheduled_for.desc(), RunRecord.started_at.desc()
        )
        if name is not None:
            query = query.where(RunRecord.activation_name == name)
        if kind is not None:
            query = query.where(RunRecord.activation_kind == kind)
        with self._sessions() as session:
            return [_run(row, _deliveries(session, row.id)) for row in session.scalars(query)]

    def successes(self, kind: str, name: str) -> list[str]:
        """Ids of the activation's successful real runs, oldest first."""
        query = (
            select(RunRecord.id)
            .where(
                RunRecord.activation_kind == kind,
                RunRecord.activation_name == name,
                RunRecord.status == "succeeded",
                RunRecord.is_test.is_(False),
            )
            .order_by(RunRecord.scheduled_for, RunRecord.started_at)
        )
        with self._sessions() as session:
            return list(session.scalars(query))


def _deliveries(session: Session, run_id: str) -> list[DeliveredFile]:
    rows = session.scalars(
        select(DeliveryRecord).where(DeliveryRecord.run_id == run_id).order_by(DeliveryRecord.id)
    )
    return [
        DeliveredFile(
            r.destination, r.uri, r.rows, r.bytes, r.sha256, r.sub_audience, r.group_name, r.role
        )
        for r in rows
    ]


def _run(row: RunRecord, deliveries: list[DeliveredFile]) -> Run:
    return Run(
        id=row.id,
        activation_kind=row.activation_kind,
        activation_name=row.activation_name,
        version=row.version,
        scheduled_for=aware(row.scheduled_for),
        started_at=aware(row.started_at),
        ended_at=aware(row.ended_at) if row.ended_at is not None else None,
        status=row.status,
        is_test=row.is_test,
        attempt=row.attempt,
        counts=dict(row.counts or {}),
        error=row.error,
        deliveries=deliveries,
    )


def _utc(moment: datetime) -> str:
    return aware(moment).astimezone(UTC).isoformat()
