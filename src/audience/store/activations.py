"""Activations put on their schedule: what the user asked for (scheduled, paused, canceled),
since when, and the newest due time a run was made for. An activation with no row is a draft."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience.store.locking import locked_session
from audience.store.models import ActivationRecord, aware
from audience.store.runs import utc


@dataclass(frozen=True)
class ScheduledActivation:
    """An activation's schedule state as recorded."""

    kind: str
    name: str
    state: str
    since: datetime
    last_due: datetime | None


class ActivationLog:
    """The `audience_activations` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def locked(self) -> AbstractContextManager[Session]:
        """A write transaction for reading and changing schedules together with their runs."""
        return locked_session(self._sessions)

    def get(self, kind: str, name: str) -> ScheduledActivation | None:
        """One activation's schedule state (None: a draft)."""
        with self._sessions() as session:
            row = session.get(ActivationRecord, (kind, name))
            return _scheduled(row) if row is not None else None

    def all(self, kind: str | None = None) -> list[ScheduledActivation]:
        """Every activation with a schedule state, by kind and name."""
        query = select(ActivationRecord).order_by(ActivationRecord.kind, ActivationRecord.name)
        if kind is not None:
            query = query.where(ActivationRecord.kind == kind)
        with self._sessions() as session:
            return [_scheduled(row) for row in session.scalars(query)]

    def set_state(
        self,
        kind: str,
        name: str,
        *,
        state: str,
        now: datetime,
        since: datetime | None = None,
        last_due: datetime | None = None,
        keep_last_due: bool = True,
    ) -> ScheduledActivation:
        """Record what the user asked for; `since` restarts the schedule from that moment."""
        with self._sessions() as session, session.begin():
            row = session.get(ActivationRecord, (kind, name))
            if row is None:
                row = ActivationRecord(kind=kind, name=name, since=utc(since or now))
                session.add(row)
            row.state = state
            row.updated_at = utc(now)
            if since is not None:
                row.since = utc(since)
            if not keep_last_due or last_due is not None:
                row.last_due = utc(last_due) if last_due is not None else None
            session.flush()
            return _scheduled(row)

    def due(self, session: Session) -> list[ActivationRecord]:
        """The scheduled activations, each locked for this transaction (skipped when another
        worker holds it: it is looking after them)."""
        query = (
            select(ActivationRecord)
            .where(ActivationRecord.state == "scheduled")
            .order_by(ActivationRecord.kind, ActivationRecord.name)
            .with_for_update(skip_locked=True)
        )
        return list(session.scalars(query))


def _scheduled(row: ActivationRecord) -> ScheduledActivation:
    return ScheduledActivation(
        kind=row.kind,
        name=row.name,
        state=row.state,
        since=aware(row.since),
        last_due=aware(row.last_due) if row.last_due is not None else None,
    )
