"""Activations put on their schedule: what the user asked for (scheduled, paused, canceled),
since when, and the newest due time a run was made for. An activation with no row is a draft."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, bindparam, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, sessionmaker

from audience.store.locking import locked_session
from audience.store.models import ActivationRecord, aware
from audience.store.runs import utc

RUNNING_STATES = ("scheduled", "ending")
"""States whose schedule runs: on it, or (a journey) ending — admitting no one, moving those
still inside to the end of their paths."""


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

    @contextmanager
    def locked(
        self, keys: Collection[tuple[str, str]]
    ) -> Iterator[tuple[Session, list[ActivationRecord]]]:
        """A write transaction holding the rows of those (kind, name) still scheduled, for
        changing their schedules together with their runs. Rows another worker holds are left
        out: it is looking after them."""
        query = (
            select(ActivationRecord)
            .where(
                tuple_(ActivationRecord.kind, ActivationRecord.name).in_(list(keys)),
                ActivationRecord.state.in_(RUNNING_STATES),
            )
            .with_for_update(skip_locked=True)
        )
        with locked_session(self._sessions) as session:
            yield session, list(session.scalars(query))

    def get(self, kind: str, name: str) -> ScheduledActivation | None:
        """One activation's schedule state (None: a draft)."""
        with self._sessions() as session:
            row = session.get(ActivationRecord, (kind, name))
            return scheduled_state(row) if row is not None else None

    def all(self, kind: str | None = None) -> list[ScheduledActivation]:
        """Every activation with a schedule state, by kind and name."""
        table = ActivationRecord.__table__
        query = select(table).order_by(table.c.kind, table.c.name)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self._sessions() as session:  # plain rows: a worker reads them all every tick
            return [scheduled_state(row) for row in session.execute(query)]

    def last_dues(self) -> dict[tuple[str, str], datetime | None]:
        """The newest due time a run was made for, of each activation whose schedule runs: the
        one column a worker reads again between rounds of queueing."""
        query = select(ActivationRecord.kind, ActivationRecord.name, ActivationRecord.last_due)
        query = query.where(ActivationRecord.state.in_(RUNNING_STATES))
        with self._sessions() as session:
            return {
                (kind, name): aware(last) if last is not None else None
                for kind, name, last in session.execute(query)
            }

    @staticmethod
    def set_last_dues(session: Session, last_dues: dict[tuple[str, str], datetime]) -> None:
        """Record the newest due time queued for each of these activations, in the caller's
        transaction (holding their rows): one statement run for all of them."""
        if last_dues:
            session.connection().execute(
                _SET_LAST_DUE,
                [
                    {"row_kind": kind, "row_name": name, "due": utc(due)}
                    for (kind, name), due in last_dues.items()
                ],
            )

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
            return scheduled_state(row)


_SET_LAST_DUE = (
    update(ActivationRecord)
    .where(
        ActivationRecord.kind == bindparam("row_kind"),
        ActivationRecord.name == bindparam("row_name"),
    )
    .values(last_due=bindparam("due", type_=DateTime(timezone=True)))
)


def scheduled_state(row: ActivationRecord | Row[Any]) -> ScheduledActivation:
    """A row (an ORM object or a plain row) as the plain record the rest of the code reads."""
    return ScheduledActivation(
        kind=row.kind,
        name=row.name,
        state=row.state,
        since=aware(row.since),
        last_due=aware(row.last_due) if row.last_due is not None else None,
    )
