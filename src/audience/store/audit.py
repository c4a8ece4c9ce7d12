"""The audit log: who did what, when. Entries are written in the session of the change they
record, so a change and its entry are committed together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience.shapes import Moment, Shape
from audience.store.models import AuditRecord, aware


@dataclass(frozen=True)
class AuditEntry:
    """One thing someone did."""

    id: int
    at: datetime
    actor: str
    action: str
    """e.g. apply, schedule, pause, secret.set, user.add, token.revoke, sign_in."""
    target: str
    detail: dict[str, Any]

    def shape(self) -> AuditShape:
        """The entry as `audience audit --json` and the API show it."""
        return AuditShape(
            id=self.id,
            at=self.at,
            actor=self.actor,
            action=self.action,
            target=self.target,
            detail=self.detail,
        )

    def to_json(self) -> dict[str, Any]:
        """`shape()` as JSON data."""
        return self.shape().model_dump(mode="json")


class AuditShape(Shape):
    """An entry of the audit log."""

    id: int
    at: Moment
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditLog:
    """The `audience_audit` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @staticmethod
    def add(
        session: Session,
        *,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an entry in `session`, committed with the change it describes."""
        session.add(
            AuditRecord(at=at, actor=actor, action=action, target=target, detail=detail or {})
        )

    def record(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an entry on its own (something that changed nothing in the store: a run)."""
        with self._sessions() as session, session.begin():
            self.add(session, at=at, actor=actor, action=action, target=target, detail=detail)

    def entries(self, *, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        """The newest entries first; `before` pages on from an entry's id."""
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditRecord.id < before)
        with self._sessions() as session:
            return [
                AuditEntry(r.id, aware(r.at), r.actor, r.action, r.target, dict(r.detail))
                for r in session.scalars(query)
            ]
