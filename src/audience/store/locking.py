"""Write transactions that read and then write without another process slipping in between."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker


@contextmanager
def locked_session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that holds SQLite's write lock from its first statement (`BEGIN
    IMMEDIATE`: SQLite has no row locks, and its default transaction takes the lock only at the
    first write). On PostgreSQL, queries inside take row locks (`FOR UPDATE SKIP LOCKED`)."""
    with sessions() as session, session.begin():
        bind = session.get_bind()
        if isinstance(bind, Engine) and bind.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session
