"""Recording an attempt: what it asks the run log, and when."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from audience.activation.recording import RunRecording
from audience.errors import LeaseLost
from audience.store.metadata import MetadataStore, resolve_url
from audience.store.runs import DueRun, LeaseTerms

T0 = datetime(2026, 11, 1, tzinfo=UTC)
LEASE = timedelta(minutes=10)


@contextmanager
def statements(store: MetadataStore) -> Iterator[list[str]]:
    """The SQL statements the store runs inside the block."""
    seen: list[str] = []

    def heard(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", heard)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", heard)


def test_confirm_trusts_a_fresh_lease_and_asks_once_half_of_it_is_gone(tmp_path: Path) -> None:
    store = MetadataStore(resolve_url("sqlite:///.audience/state.db", tmp_path))
    now = [T0]
    lease = LeaseTerms(LEASE, lambda: now[0])
    with store.session() as session, session.begin():
        store.runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    run = store.runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert run is not None
    recording = RunRecording(store.runs, run, lambda: T0, "w1", lease)

    with statements(store) as seen:
        now[0] = T0 + LEASE / 2 - timedelta(seconds=1)
        recording.confirm()  # nobody can have taken the run: its lease has half to run
    assert seen == []

    now[0] = T0 + LEASE / 2 + timedelta(seconds=1)
    with statements(store) as seen:
        recording.confirm()  # still ours, as the run log says
    assert seen

    now[0] = T0 + LEASE + timedelta(seconds=1)  # expired: another worker takes it over
    other = LeaseTerms(LEASE, lambda: now[0])
    assert store.runs.claim(worker="w2", now=T0, lease=other, max_attempts=3) is not None
    with pytest.raises(LeaseLost):
        recording.confirm()
    store.close()
